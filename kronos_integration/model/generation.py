"""The decoding loop behind `KronosPredictor`: token paths for many rows at once.

One `DecodeRun` decodes R = series × samples rows. Each series' history is encoded once by the
tokenizer and its window computed once (the prefill, bar 0); its cache is then copied to its
sample rows. While history plus generated bars fit in `max_context`, a bar is one cached token
per row (`FusedKronos.step`). Once a row's window must slide, positions restart at 0 in the
window and every hidden state changes, so the bar recomputes the window exactly as the
reference does. Plans (who fits, where each row writes) come from the history lengths on the
host, so the loop never waits on the device.

When every row has the same history length, a fitting bar (model step, both heads, both
samples, the writes, the position counters) touches device tensors only: on CUDA it is captured
once as a graph and each later bar is one replay. Deadlines are checked before every bar and
after every layer of every window pass, which is bounded to `WINDOW_TOKENS` tokens, so a
forecast stops soon after its deadline even when one bar recomputes many long windows.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from time import monotonic

import numpy as np
import torch
from tqdm.auto import tqdm

from kronos_integration.model.decoder import DecoderCache, FusedKronos
from kronos_integration.model.kronos import KronosTokenizer
from kronos_integration.sampling import SamplingParams, sample_tokens

logger = logging.getLogger(__name__)

WINDOW_TOKENS = 2048  # tokens per window pass between two deadline checks
GRAPH_MIN_BARS = 3  # a capture costs about two eager bars


@dataclass
class DecodeStats:
    """How bars were decoded since the predictor was built (all threads together)."""

    graph_captures: int = 0  # CUDA graphs captured (their warm-up decodes one bar: eager_bars)
    graph_failures: int = 0  # captures that failed and left the run eager
    graph_bars: int = 0  # bars decoded by one graph replay
    eager_bars: int = 0  # one-token cached bars run op by op
    window_bars: int = 0  # bars that computed windows: each prefill and each sliding bar
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, count: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + count)


@dataclass(frozen=True)
class History:
    """One series for the model: normalised candles x (L, 6), time features of the history
    (L, 5) and of the bars to generate (pred_len, 5), all float32."""

    x: np.ndarray
    x_stamp: np.ndarray
    y_stamp: np.ndarray


@dataclass(frozen=True)
class Engines:
    """The passes of one model: `step` for one-token bars, `window` for window passes (the same
    object when one kernel serves both)."""

    step: FusedKronos
    window: FusedKronos


@dataclass
class _S2Context:
    """Where the dependency layer's keys/values for this bar come from.

    `widths` (R,): valid cached keys per row (host); `recomputed`: rows whose window slid, with
    their freshly projected keys and values.
    """

    widths: np.ndarray
    recomputed: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None


class DecodeRun:
    """The state of one batched generation: R = series × samples rows, series-major.

    Row r holds its tokens left-aligned in `s1`/`s2` (R, L_max + pred_len) and its time
    features in `stamps` (R, L_max + pred_len, 5); `last_s1`/`last_s2` (R,) are the tokens
    sampled last, the input of the next bar.
    """

    def __init__(
        self,
        engines: Engines,
        tokenizer: KronosTokenizer,
        histories: Sequence[History],
        pred_len: int,
        sample_count: int,
        params: SamplingParams,
        generator: torch.Generator | None,
        *,
        max_context: int,
        deadline: float | None,
        cuda_graphs: bool,
        stats: DecodeStats,
    ) -> None:
        self.engine = engines.step
        self.window_engine = engines.window
        self.tokenizer = tokenizer
        self.max_context = max_context
        self.pred_len = pred_len
        self.samples = sample_count
        self.params = params
        self.generator = generator
        self.deadline = deadline
        self.stats = stats
        self.device = device = self.engine.device
        lengths = np.array([len(h.x) for h in histories])
        self.width = int(lengths.max()) + pred_len
        n = len(histories)
        s1 = torch.zeros(n, self.width, dtype=torch.long, device=device)
        s2 = torch.zeros_like(s1)
        stamps = torch.zeros(n, self.width, 5, device=device)
        for i, one in enumerate(histories):
            self.check(0, f"encoding history {i + 1} of {n}")
            length = len(one.x)
            x = torch.from_numpy(one.x).to(device)[None]  # (1, L, 6)
            ids1, ids2 = tokenizer.encode(x, half=True)  # (1, L) each
            s1[i, :length], s2[i, :length] = ids1[0], ids2[0]
            stamps[i, :length] = torch.from_numpy(one.x_stamp)
            stamps[i, length : length + pred_len] = torch.from_numpy(one.y_stamp)
        self.history = lengths.repeat(sample_count)  # host (R,): tokens known before bar 0
        self._series_tokens = (s1, s2, stamps)  # per series, expanded after the prefill
        self.s1 = s1.repeat_interleave(sample_count, dim=0)
        self.s2 = s2.repeat_interleave(sample_count, dim=0)
        self.stamps = stamps.repeat_interleave(sample_count, dim=0)
        future = torch.from_numpy(np.stack([h.y_stamp for h in histories])).to(device)
        future_time = self.engine.time_embedding(future)  # (N, pred_len, d)
        self.future_time = future_time.repeat_interleave(sample_count, dim=0)
        self.capacity = min(self.max_context, self.width)
        self.cache: DecoderCache = self.engine.new_cache(n, self.capacity)  # per series at first
        self.rotary = self.engine.rotary_tables(self.capacity)
        rows = len(self.s1)
        self.rows = torch.arange(rows, device=device)
        self.last_s1 = torch.zeros(rows, dtype=torch.long, device=device)
        self.last_s2 = torch.zeros_like(self.last_s1)
        self.uniform = bool((lengths == lengths[0]).all())
        # Uniform runs: position of the next bar's input token, and its index among the bars.
        self.at = torch.full((1,), int(lengths[0]), dtype=torch.long, device=device)
        self.future_index = torch.zeros(1, dtype=torch.long, device=device)
        self.key_positions = torch.arange(self.capacity, device=device)
        self.graph_wanted = cuda_graphs and self.uniform and device.type == "cuda"
        self.graph: _CudaGraphBar | None = None

    def run(self, verbose: bool = False) -> np.ndarray:
        """Generate every bar (a progress bar on stderr when `verbose`), then decode: normalised
        sample paths, float32 (series × samples, pred_len, 6), series-major.

        Raises TimeoutError once the deadline (a `time.monotonic()` instant) has passed.
        """
        bars = tqdm(range(self.pred_len), desc="Kronos bars", disable=not verbose, file=sys.stderr)
        try:
            for bar in bars:
                self.bar(bar)
            return self.decode_paths()
        finally:
            # Free the CUDA graph here: destroyed later by the garbage collector, it could land
            # in the middle of another capture, where CUDA forbids it.
            self.graph = None

    # -- helpers
    def check(self, bars_done: int, stage: str | None = None) -> None:
        """TimeoutError once the deadline has passed; `stage` says where inside a bar."""
        if self.deadline is not None and monotonic() > self.deadline:
            where = "" if stage is None else f" ({stage})"
            raise TimeoutError(
                f"forecast passed its deadline after {bars_done} of {self.pred_len} bars{where}"
            )

    def _to_device(self, values: np.ndarray) -> torch.Tensor:
        """A host array on the run's device, without waiting for queued device work."""
        return torch.from_numpy(np.ascontiguousarray(values)).to(self.device, non_blocking=True)

    def _positions(self, values: np.ndarray) -> torch.Tensor:
        """(1,) when every row shares the position (the cheaper and graph-safe write), else (R,)."""
        return self._to_device(values[:1] if (values == values[0]).all() else values)

    def _key_mask(self, valid: np.ndarray) -> torch.Tensor | None:
        """(R, 1, 1, K) mask of the first `valid[r]` keys per row, or None when all rows agree."""
        if (valid == valid[0]).all():
            return None
        keys = np.arange(int(valid.max()))
        return self._to_device(keys < valid[:, None])[:, None, None, :]

    def _windows(
        self, tokens: tuple[torch.Tensor, torch.Tensor, torch.Tensor], ends: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
        """Right-padded windows of the last ≤ max_context tokens before `ends` (rows,)."""
        s1, s2, stamps = tokens
        starts = np.maximum(ends - self.max_context, 0)
        widths = ends - starts
        index_host = np.minimum(starts[:, None] + np.arange(widths.max()), self.width - 1)
        index = self._to_device(index_host)  # (rows, W)
        return (
            s1.gather(1, index),
            s2.gather(1, index),
            stamps.gather(1, index[..., None].expand(-1, -1, 5)),
            widths,
        )

    def _window_pass(
        self,
        bar: int,
        windows: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        cache: DecoderCache | None,
    ) -> torch.Tensor:
        """Hidden states (B, W, d) of right-padded windows (B, W), deadline-checked per layer."""
        engine = self.window_engine
        s1, s2, stamps = windows
        x = engine.embed(s1, s2, engine.time_embedding(stamps))
        layers = len(engine.layers)

        def checkpoint(layer: int) -> None:
            self.check(bar, f"in bar {bar + 1}: window layer {layer + 1} of {layers}")

        return engine.window(x, cache, checkpoint)

    def _chunks(self, rows: int, width: int) -> list[tuple[int, int]]:
        """Row ranges of at most `WINDOW_TOKENS` tokens (at least one row) each."""
        per_chunk = max(1, WINDOW_TOKENS // max(width, 1))
        return [(a, min(a + per_chunk, rows)) for a in range(0, rows, per_chunk)]

    # -- one generated bar
    def bar(self, bar: int) -> None:
        """Generate bar `bar` (0-based) for every row."""
        self.check(bar)
        ends = self.history + bar  # tokens known per row
        if bar > 0 and self.uniform and ends[0] <= self.max_context:
            self._fitting(bar, int(ends[0]))
            return
        if bar == 0:
            hidden, context = self._prefill(ends)
        else:
            hidden, context = self._general(bar, ends)
        s1 = sample_tokens(self.engine.s1_logits(hidden), self.params, self.generator)[:, 0]
        s2_logits = self._s2_logits(hidden, s1, context)
        s2 = sample_tokens(s2_logits, self.params, self.generator)[:, 0]
        write_at = self._positions(ends)
        if write_at.shape[0] == 1:
            self.s1.index_copy_(1, write_at, s1[:, None])
            self.s2.index_copy_(1, write_at, s2[:, None])
        else:
            self.s1[self.rows, write_at] = s1
            self.s2[self.rows, write_at] = s2
        self.last_s1.copy_(s1)
        self.last_s2.copy_(s2)

    def _fitting(self, bar: int, end: int) -> None:
        """A bar of a uniform run whose window still fits: a graph replay where one exists."""
        if self.graph is not None:
            self.graph.replay()
            self.stats.add("graph_bars")
            return
        last_fitting_bar = min(self.pred_len - 1, self.max_context - int(self.history[0]))
        if self.graph_wanted and last_fitting_bar - bar + 1 >= GRAPH_MIN_BARS:
            self.graph_wanted = False  # one capture per run, whatever happens
            self.graph = _CudaGraphBar.capture(self)  # its warm-up decodes this bar
            self.stats.add("graph_captures" if self.graph is not None else "graph_failures")
        else:
            self.fitting_bar(end)
        self.stats.add("eager_bars")

    def fitting_bar(self, key_len: int | None) -> None:
        """One bar of a uniform run whose window fits, on device tensors only.

        Feeds `last_s1/last_s2` at position `at` through the cached model, samples the next
        pair, writes it at `at + 1` and advances `at` and `future_index`. With `key_len` None
        the attention spans the whole cache with a mask of the filled positions: shapes never
        change, so a CUDA graph can capture the bar.
        """
        engine, cache = self.engine, self.cache
        mask = None
        if key_len is None:
            key_len = self.capacity
            mask = (self.key_positions <= self.at).view(1, 1, 1, -1)
        time_emb = self.future_time.index_select(1, self.future_index)[:, 0]  # (R, d)
        x = engine.embed(self.last_s1, self.last_s2, time_emb)
        rotary = [(c.index_select(0, self.at), s.index_select(0, self.at)) for c, s in self.rotary]
        hidden = engine.step(x, cache, self.at, key_len, mask, rotary)
        s1 = sample_tokens(engine.s1_logits(hidden), self.params, self.generator)[:, 0]
        keys, values = cache.dep_keys[:, :, :key_len], cache.dep_values[:, :, :key_len]
        s2_logits = engine.s2_logits(hidden, s1, keys, values, mask)
        s2 = sample_tokens(s2_logits, self.params, self.generator)[:, 0]
        self.at.add_(1)
        self.future_index.add_(1)
        self.s1.index_copy_(1, self.at, s1[:, None])
        self.s2.index_copy_(1, self.at, s2[:, None])
        self.last_s1.copy_(s1)
        self.last_s2.copy_(s2)

    def _prefill(self, ends: np.ndarray) -> tuple[torch.Tensor, _S2Context]:
        """Bar 0: every series' window once, then its cache copied to its sample rows."""
        s1, s2, stamps, widths = self._windows(self._series_tokens, ends[:: self.samples])
        engine = self.window_engine
        hidden = torch.empty(*s1.shape, engine.d_model, dtype=engine.dtype, device=self.device)
        for a, b in self._chunks(len(widths), s1.shape[1]):
            windows = (s1[a:b], s2[a:b], stamps[a:b])
            hidden[a:b] = self._window_pass(0, windows, self.cache.rows(a, b))
        self.stats.add("window_bars")
        self.cache.repeat_rows(self.samples)
        last_index = self._to_device(widths - 1)
        last = hidden[torch.arange(len(widths), device=self.device), last_index]  # (N, d)
        return last.repeat_interleave(self.samples, 0), _S2Context(widths.repeat(self.samples))

    def _general(self, bar: int, ends: np.ndarray) -> tuple[torch.Tensor, _S2Context]:
        """Later bars of ragged or sliding runs: one cached token for rows whose window still
        fits, a window recompute for the others."""
        fits = ends <= self.max_context
        engine = self.engine
        hidden = torch.empty(len(ends), engine.d_model, dtype=engine.dtype, device=self.device)
        context = _S2Context(np.minimum(ends, self.capacity))
        if fits.any():
            positions = np.minimum(ends - 1, self.capacity - 1)  # sliding rows: scratch slot
            at = self._positions(positions)
            time_emb = self.future_time[:, bar - 1]
            x = engine.embed(self.last_s1, self.last_s2, time_emb)
            rotary = [(c[at], s[at]) for c, s in self.rotary]
            key_len = int(positions.max()) + 1
            mask = self._key_mask(positions + 1)
            hidden[:] = engine.step(x, self.cache, at, key_len, mask, rotary)
            self.stats.add("eager_bars")
        if not fits.all():
            sliding_host = np.nonzero(~fits)[0]
            sliding = self._to_device(sliding_host)
            last, keys, values = self._recompute(bar, sliding_host, ends[sliding_host])
            hidden[sliding] = last
            context.recomputed = (sliding, keys, values)
            self.stats.add("window_bars")
        return hidden, context

    def _recompute(
        self, bar: int, rows: np.ndarray, ends: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The reference's pass over the sliding rows' windows (all max_context wide), in
        chunks: last hidden states (S, d) and the dependency layer's keys/values (S, Hd, C, Dd)."""
        lasts, keys, values = [], [], []
        for a, b in self._chunks(len(rows), self.max_context):
            index = self._to_device(rows[a:b])
            tokens = (self.s1[index], self.s2[index], self.stamps[index])
            s1, s2, stamps, _ = self._windows(tokens, ends[a:b])
            hidden = self._window_pass(bar, (s1, s2, stamps), None)
            chunk_keys, chunk_values = self.window_engine.dep_memory(hidden)
            lasts.append(hidden[:, -1])
            keys.append(chunk_keys)
            values.append(chunk_values)
        return torch.cat(lasts), torch.cat(keys), torch.cat(values)

    def _s2_logits(
        self, hidden: torch.Tensor, s1: torch.Tensor, context: _S2Context
    ) -> torch.Tensor:
        engine = self.engine
        if context.recomputed is not None and len(context.recomputed[0]) == len(hidden):
            _, keys, values = context.recomputed  # every row slid: no cached keys needed
            return engine.s2_logits(hidden, s1, keys, values)
        key_len = int(context.widths.max())
        logits = engine.s2_logits(
            hidden,
            s1,
            self.cache.dep_keys[:, :, :key_len],
            self.cache.dep_values[:, :, :key_len],
            self._key_mask(context.widths),
        )
        if context.recomputed is not None:
            rows, keys, values = context.recomputed
            logits[rows] = engine.s2_logits(hidden[rows], s1[rows], keys, values)
        return logits

    # -- the end
    def decode_paths(self) -> np.ndarray:
        """Tokenizer-decode each row's last ≤ max_context tokens; keep the generated bars.

        Returns float32 (R, pred_len, 6), normalised.
        """
        s1, s2, _, widths = self._windows(
            (self.s1, self.s2, self.stamps), self.history + self.pred_len
        )
        decoded = []
        for a, b in self._chunks(len(widths), s1.shape[1]):
            self.check(self.pred_len, "decoding the paths")
            decoded.append(self.tokenizer.decode((s1[a:b], s2[a:b]), half=True))  # (B, W, 6)
        paths = torch.cat(decoded)
        index = self._to_device((widths - self.pred_len)[:, None] + np.arange(self.pred_len))
        paths = paths.gather(1, index[..., None].expand(-1, -1, paths.shape[-1]))
        return paths.float().cpu().numpy()


class _CudaGraphBar:
    """`DecodeRun.fitting_bar` captured as a CUDA graph: one replay decodes one bar.

    The graph reads and writes the run's tensors in place (tokens, cache, counters), draws from
    the run's generator through CUDA's graph-safe RNG (each replay advances it as the eager bar
    would), and holds no reference back to the run, so nothing delays its release.
    """

    def __init__(self, graph: torch.cuda.CUDAGraph) -> None:
        self.graph = graph

    @classmethod
    def capture(cls, run: DecodeRun) -> _CudaGraphBar | None:
        """Decode the current bar eagerly on a side stream, then capture the next ones.

        A capture that fails is logged and returns None: the run goes on eagerly.
        """
        stream = torch.cuda.Stream(run.device)  # each capture its own stream: threads capture too
        current = torch.cuda.current_stream(run.device)
        stream.wait_stream(current)
        with torch.cuda.stream(stream):  # warm-up on the capture stream: this bar, for real
            run.fitting_bar(None)
        current.wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        try:
            if run.generator is not None:
                graph.register_generator_state(run.generator)
            with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
                run.fitting_bar(None)
        except RuntimeError as error:
            logger.warning("CUDA graph capture failed, decoding eagerly: %s", error)
            return None
        return cls(graph)

    def replay(self) -> None:
        self.graph.replay()
