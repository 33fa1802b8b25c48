"""The decoding loop behind `KronosPredictor`: token paths for many rows at once.

One `DecodeRun` decodes R rows: one or more `Stream`s (each a forecast call: its series, its
sample count, horizon, deadline and random generator), each series × its samples. Each series'
history is encoded once by the tokenizer and its window computed once (the prefill, bar 0); its
cache is then copied to its sample rows. While history plus generated bars fit in `max_context`,
a bar is one cached token per row (`FusedKronos.step`). Once a row's window must slide,
positions restart at 0 in the window and every hidden state changes, so the bar recomputes the
window exactly as the reference does. Plans (who fits, where each row writes) come from the
history lengths on the host, so the loop never waits on the device.

Streams are independent: each draws its sampling noise from its own generator in the shapes it
would draw alone, is decoded (tokenizer) in the chunks it would be decoded in alone, and leaves
the run, its rows dropped, once its last bar is done or its deadline has passed, so a stream's
paths do not depend on the company it decoded in (float rounding of batched products aside).

When every row has the same history length, a fitting bar (model step, both heads, both
samples, the writes, the position counters) reads each series' history from the cache once for
all its sample paths (`SharedPrefix`: on the CPU, reading every row's cache was most of a step's
time), and touches device tensors only: on CUDA it is captured
once as a graph and each later bar is one replay. Deadlines are checked before every bar and
after every layer of every window pass, which is bounded to `WINDOW_TOKENS` tokens, so a
forecast stops soon after its deadline even when one bar recomputes many long windows.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import monotonic

import numpy as np
import torch
from tqdm.auto import tqdm

from kronos_integration.model.decoder import DecoderCache, FusedKronos, SharedPrefix
from kronos_integration.model.kronos import KronosTokenizer
from kronos_integration.sampling import RowGenerators, SamplingParams, sample_tokens

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


class AllStreamsStopped(TimeoutError):
    """Every stream of a run passed its deadline (each was given its own TimeoutError)."""


@dataclass(frozen=True)
class Stream:
    """Series that draw from one random generator: the paths of one forecast call.

    `sample_count` rows per series, `pred_len` bars each, no work for it past `deadline` (a
    `time.monotonic()` instant). Several streams decode together in one `DecodeRun`: each one
    draws exactly the noise it would draw alone, ends at its own bar and its own deadline.
    """

    histories: Sequence[History]
    pred_len: int
    sample_count: int
    generator: torch.Generator | None
    deadline: float | None = None


Outcome = np.ndarray | TimeoutError
"""A stream's result: its normalised paths, float32 (series × samples, pred_len, 6), or the
TimeoutError of its deadline."""


@dataclass
class _Active:
    """A stream still in the run: its rows are consecutive, in stream order."""

    index: int
    stream: Stream
    rows: int
    settled: bool = False


class DecodeRun:
    """The state of one batched generation of streams; R rows, stream-major, then series-major,
    then samples.

    Row r holds its tokens left-aligned in `s1`/`s2` (R, L_max + pred_len) and its time
    features in `stamps` (R, L_max + pred_len, 5); `last_s1`/`last_s2` (R,) are the tokens
    sampled last, the input of the next bar. A stream leaves the run (its rows are dropped)
    once it has its paths or has passed its deadline; `outcomes` holds what each one got, and
    `on_done(stream_index, outcome)` is called as soon as it is known.
    """

    def __init__(
        self,
        engines: Engines,
        tokenizer: KronosTokenizer,
        streams: Sequence[Stream],
        params: SamplingParams,
        *,
        max_context: int,
        cuda_graphs: bool,
        stats: DecodeStats,
        on_done: Callable[[int, Outcome], None] | None = None,
    ) -> None:
        if not streams:
            raise ValueError("a decode run needs at least one stream")
        self.engine = engines.step
        self.window_engine = engines.window
        self.tokenizer = tokenizer
        self.max_context = max_context
        self.params = params
        self.stats = stats
        self.outcomes: dict[int, Outcome] = {}
        self.on_done = on_done
        self.active = [
            _Active(i, s, len(s.histories) * s.sample_count) for i, s in enumerate(streams)
        ]
        self.pred_len = max(s.pred_len for s in streams)
        self.device = device = self.engine.device
        histories = [h for s in streams for h in s.histories]
        lengths = np.array([len(h.x) for h in histories])
        horizons = np.array([s.pred_len for s in streams for _ in s.histories])
        self.series_samples = np.array([s.sample_count for s in streams for _ in s.histories])
        self.series_lengths = lengths
        self.width = int((lengths + horizons).max())
        n = len(histories)
        s1 = torch.zeros(n, self.width, dtype=torch.long, device=device)
        s2 = torch.zeros_like(s1)
        stamps = torch.zeros(n, self.width, 5, device=device)
        future = np.zeros((n, self.pred_len, 5), dtype=np.float32)  # shorter horizons: padded
        for i, one in enumerate(histories):
            self.check(0, f"encoding history {i + 1} of {n}")
            length, horizon = len(one.x), len(one.y_stamp)
            x = torch.from_numpy(one.x).to(device)[None]  # (1, L, 6)
            ids1, ids2 = tokenizer.encode(x, half=True)  # (1, L) each
            s1[i, :length], s2[i, :length] = ids1[0], ids2[0]
            stamps[i, :length] = torch.from_numpy(one.x_stamp)
            stamps[i, length : length + horizon] = torch.from_numpy(one.y_stamp)
            future[i, :horizon] = one.y_stamp
        self.history = lengths.repeat(self.series_samples)  # host (R,): tokens known at bar 0
        self._series_tokens = (s1, s2, stamps)  # per series, expanded after the prefill
        self.s1 = self._per_row(s1)
        self.s2 = self._per_row(s2)
        self.stamps = self._per_row(stamps)
        future_time = self.engine.time_embedding(torch.from_numpy(future).to(device))
        self.future_time = self._per_row(future_time)  # (R, pred_len, d)
        self.capacity = min(self.max_context, self.width)
        self.cache: DecoderCache = self.engine.new_cache(n, self.capacity)  # per series at first
        self.prefilled = False
        self.prefix: SharedPrefix | None = None  # the histories' cache, once per series
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
        self.graphs_allowed = cuda_graphs and self.uniform and device.type == "cuda"
        self.graph_wanted = self.graphs_allowed
        self.graph: _CudaGraphBar | None = None

    @property
    def generator(self) -> torch.Generator | RowGenerators | None:
        """What the bars draw from: the one stream's generator, or one per block of rows."""
        if len(self.active) == 1:
            return self.active[0].stream.generator
        return [(a.rows, a.stream.generator) for a in self.active]

    def generators(self) -> list[torch.Generator]:
        """The distinct generators the active streams draw from (None, the global one, aside)."""
        found: list[torch.Generator] = []
        for active in self.active:
            generator = active.stream.generator
            if generator is not None and all(generator is not g for g in found):
                found.append(generator)
        return found

    def _per_row(self, per_series: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (R, ...): each series' entry repeated for its sample rows."""
        counts = self.series_samples
        if (counts == counts[0]).all():
            return per_series.repeat_interleave(int(counts[0]), dim=0)
        return per_series.repeat_interleave(self._to_device(counts), dim=0)

    def run(self, verbose: bool = False) -> np.ndarray:
        """Generate every bar (a progress bar on stderr when `verbose`), then decode: normalised
        sample paths, float32 (R, pred_len, 6), the streams' paths one after the other (they
        must share `pred_len` when there are several).

        Raises a stream's TimeoutError once its deadline (a `time.monotonic()` instant) has
        passed.
        """
        self.run_streams(verbose)
        paths = []
        for index in sorted(self.outcomes):
            outcome = self.outcomes[index]
            if isinstance(outcome, TimeoutError):
                raise outcome
            paths.append(outcome)
        return paths[0] if len(paths) == 1 else np.concatenate(paths)

    def run_streams(self, verbose: bool = False) -> dict[int, Outcome]:
        """Generate and decode every stream; each stream's outcome, by index (also handed to
        `on_done` as soon as it is known: a short stream before a long one ends)."""
        bars = tqdm(range(self.pred_len), desc="Kronos bars", disable=not verbose, file=sys.stderr)
        try:
            for bar in bars:
                self._settle(bar)
                if not self.active:
                    break
                self.bar(bar)
            self._settle(self.pred_len)
        except AllStreamsStopped:
            pass  # each stream was given its TimeoutError
        finally:
            # Free the CUDA graph here: destroyed later by the garbage collector, it could land
            # in the middle of another capture, where CUDA forbids it.
            self.graph = None
        return self.outcomes

    # -- streams ending
    def _deliver(self, active: _Active, outcome: Outcome) -> None:
        active.settled = True
        self.outcomes[active.index] = outcome
        if self.on_done is not None:
            self.on_done(active.index, outcome)

    def check(self, bars_done: int, stage: str | None = None) -> None:
        """Give each stream whose deadline has passed its TimeoutError (`stage` says where
        inside a bar); AllStreamsStopped, with the last such error's message, once no stream
        is left to decode."""
        pending = [a for a in self.active if not a.settled]
        if all(a.stream.deadline is None for a in pending):
            return
        now = monotonic()
        where = "" if stage is None else f" ({stage})"
        last: TimeoutError | None = None
        for active in pending:
            deadline = active.stream.deadline
            if deadline is not None and now > deadline:
                pred_len = active.stream.pred_len
                last = TimeoutError(
                    f"forecast passed its deadline after {min(bars_done, pred_len)} of "
                    f"{pred_len} bars{where}"
                )
                self._deliver(active, last)
        if last is not None and all(a.settled for a in self.active):
            raise AllStreamsStopped(str(last))

    def _settle(self, bar: int) -> None:
        """Before bar `bar`: decode the streams whose last bar is done, drop settled rows."""
        for active in self.active:
            if not active.settled and active.stream.pred_len == bar:
                paths = self._decode_stream(active)
                if not active.settled:  # its deadline may have passed while decoding
                    self._deliver(active, paths)
        if any(a.settled for a in self.active):
            self._drop_settled()

    def _drop_settled(self) -> None:
        """Keep only the rows (and, before the prefill, the series) of unsettled streams."""
        keep_rows = np.concatenate([np.full(a.rows, not a.settled) for a in self.active])
        kept = [a for a in self.active if not a.settled]
        self.active = kept
        if not kept:
            return
        rows = self._to_device(np.nonzero(keep_rows)[0])
        self.s1, self.s2 = self.s1.index_select(0, rows), self.s2.index_select(0, rows)
        self.stamps = self.stamps.index_select(0, rows)
        self.future_time = self.future_time.index_select(0, rows)
        self.last_s1 = self.last_s1.index_select(0, rows)
        self.last_s2 = self.last_s2.index_select(0, rows)
        self.history = self.history[keep_rows]
        self.rows = torch.arange(len(self.history), device=self.device)
        keep_series = keep_rows[np.cumsum(self.series_samples) - 1]
        series = self._to_device(np.nonzero(keep_series)[0])
        self.series_samples = self.series_samples[keep_series]
        self.series_lengths = self.series_lengths[keep_series]
        if self.prefilled:
            self.cache.select_rows(rows)
            if self.prefix is not None:
                self.prefix = self.prefix.select_series(series)
        else:
            s1, s2, stamps = (t.index_select(0, series) for t in self._series_tokens)
            self._series_tokens = (s1, s2, stamps)
            self.cache.select_rows(series)
        self.graph = None  # it holds the old tensors; a later bar may capture again
        self.graph_wanted = self.graphs_allowed

    def _decode_stream(self, active: _Active) -> np.ndarray:
        """Tokenizer-decode each of the stream's rows' last ≤ max_context tokens; keep its
        generated bars: float32 (rows, pred_len, 6), normalised. Decoded in the chunks it would
        be decoded in alone."""
        start = sum(a.rows for a in self.active[: self.active.index(active)])
        rows = slice(start, start + active.rows)
        pred_len, samples = active.stream.pred_len, active.stream.sample_count
        lengths = self.history[rows]
        window_start = max(int(lengths[0]) + pred_len - self.max_context, 0)
        if samples > 1 and (lengths == lengths[0]).all() and window_start < lengths[0]:
            return self._decode_shared(rows, int(lengths[0]), window_start, pred_len, samples)
        tokens = (self.s1[rows], self.s2[rows], self.stamps[rows])
        s1, s2, _, widths = self._windows(tokens, self.history[rows] + pred_len)
        decoded = []
        for a, b in self._chunks(len(widths), s1.shape[1]):
            self.check(pred_len, "decoding the paths")
            decoded.append(self.tokenizer.decode((s1[a:b], s2[a:b]), half=True))  # (B, W, 6)
        paths = torch.cat(decoded)
        index = self._to_device((widths - pred_len)[:, None] + np.arange(pred_len))
        paths = paths.gather(1, index[..., None].expand(-1, -1, paths.shape[-1]))
        return paths.float().cpu().numpy()

    def _decode_shared(
        self, rows: slice, history: int, start: int, pred_len: int, samples: int
    ) -> np.ndarray:
        """`_decode_stream` for rows whose windows share each series' history tokens
        start…history-1: those are decoded once per series (`KronosTokenizer.decode_shared`),
        in chunks of whole series of at most about `WINDOW_TOKENS` tokens."""
        s1, s2 = self.s1[rows], self.s2[rows]
        shared = (s1[::samples, start:history], s2[::samples, start:history])  # (N, P) each
        own = (s1[:, history : history + pred_len], s2[:, history : history + pred_len])
        per_chunk = max(1, WINDOW_TOKENS // (history - start + samples * pred_len))
        decoded = []
        for a in range(0, len(shared[0]), per_chunk):
            b = a + per_chunk
            self.check(pred_len, "decoding the paths")
            decoded.append(
                self.tokenizer.decode_shared(
                    (shared[0][a:b], shared[1][a:b]),
                    (own[0][a * samples : b * samples], own[1][a * samples : b * samples]),
                    samples,
                )
            )  # (rows, pred_len, 6)
        return torch.cat(decoded).float().cpu().numpy()

    # -- helpers
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
        pred_len = max(a.stream.pred_len for a in self.active)
        last_fitting_bar = min(pred_len - 1, self.max_context - int(self.history[0]))
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
        mask, prefix = None, self.prefix
        if key_len is None:
            key_len, prefix = self.capacity, None
            mask = (self.key_positions <= self.at).view(1, 1, 1, -1)
        time_emb = self.future_time.index_select(1, self.future_index)[:, 0]  # (R, d)
        x = engine.embed(self.last_s1, self.last_s2, time_emb)
        rotary = [(c.index_select(0, self.at), s.index_select(0, self.at)) for c, s in self.rotary]
        hidden = engine.step(x, cache, self.at, key_len, mask, rotary, prefix)
        s1 = sample_tokens(engine.s1_logits(hidden), self.params, self.generator)[:, 0]
        own = slice(0 if prefix is None else prefix.length, key_len)
        keys, values = cache.dep_keys[:, :, own], cache.dep_values[:, :, own]
        s2_logits = engine.s2_logits(hidden, s1, keys, values, mask, prefix)
        s2 = sample_tokens(s2_logits, self.params, self.generator)[:, 0]
        self.at.add_(1)
        self.future_index.add_(1)
        self.s1.index_copy_(1, self.at, s1[:, None])
        self.s2.index_copy_(1, self.at, s2[:, None])
        self.last_s1.copy_(s1)
        self.last_s2.copy_(s2)

    def _prefill(self, ends: np.ndarray) -> tuple[torch.Tensor, _S2Context]:
        """Bar 0: every series' window once, then its cache copied to its sample rows."""
        s1, s2, stamps, widths = self._windows(self._series_tokens, self.series_lengths)
        engine = self.window_engine
        hidden = torch.empty(*s1.shape, engine.d_model, dtype=engine.dtype, device=self.device)
        for a, b in self._chunks(len(widths), s1.shape[1]):
            windows = (s1[a:b], s2[a:b], stamps[a:b])
            hidden[a:b] = self._window_pass(0, windows, self.cache.rows(a, b))
        self.stats.add("window_bars")
        counts = self.series_samples
        same = (counts == counts[0]).all()
        if same and self.uniform and counts[0] > 1 and self.series_lengths[0] < self.capacity:
            self.prefix = SharedPrefix.of(self.cache, int(self.series_lengths[0]), int(counts[0]))
        self.cache.repeat_rows(int(counts[0]) if same else self._to_device(counts))
        self.prefilled = True
        last_index = self._to_device(widths - 1)
        last = hidden[torch.arange(len(widths), device=self.device), last_index]  # (N, d)
        return self._per_row(last), _S2Context(widths.repeat(counts))

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
            for generator in run.generators():
                graph.register_generator_state(generator)
            with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
                run.fitting_bar(None)
        except RuntimeError as error:
            logger.warning("CUDA graph capture failed, decoding eagerly: %s", error)
            return None
        return cls(graph)

    def replay(self) -> None:
        self.graph.replay()
