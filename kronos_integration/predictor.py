"""`KronosPredictor`: the reference predictor's interface and results, decoded with a KV cache.

Per series: normalise the candles, encode the whole history into tokens, then for each future bar
run the model on the last `max_context` tokens, sample s1 then s2, and append. While history plus
generated bars fit in `max_context`, the window only grows, so keys and values are cached and each
step processes one token per sample path. Once the window must slide, every position's hidden state
changes (positions restart at 0 in the window), so those steps recompute the window: exactly the
reference algorithm. All sample paths of all series decode as one batch.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from kronos_integration.forecast import (
    CANDLE_COLUMNS,
    DEFAULT_QUANTILES,
    PRICE_COLUMNS,
    Forecast,
    check_quantile_levels,
)
from kronos_integration.model import Kronos, KronosTokenizer
from kronos_integration.model.module import (
    KVCache,
    onednn_available,
    pack_linear_layers_for_cpu,
)
from kronos_integration.sampling import SamplingParams, sample_tokens

logger = logging.getLogger(__name__)

Timestamps = pd.Series | pd.DatetimeIndex


@dataclass(frozen=True)
class PreparedSeries:
    """One series ready for the model.

    Attributes:
        x: float32 (L, 6) normalised and clipped candles.
        x_stamp, y_stamp: float32 (L, 5) and (pred_len, 5) time features.
        mean, std: float32 (6,) per-column statistics of the history.
    """

    x: np.ndarray
    x_stamp: np.ndarray
    y_stamp: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    def denormalise(self, values: np.ndarray) -> np.ndarray:
        """Map normalised values (..., 6) back to price units (float32, as the reference)."""
        return np.asarray(values * (self.std + 1e-5) + self.mean)


def time_features(timestamps: Timestamps) -> np.ndarray:
    """float32 (T, 5): minute, hour, weekday (Mon=0), day of month, month."""
    index = pd.DatetimeIndex(timestamps)
    columns = (index.minute, index.hour, index.day_of_week, index.day, index.month)
    return np.stack([np.asarray(c) for c in columns], axis=1).astype(np.float32)


def prepare_series(
    df: pd.DataFrame, x_timestamp: Timestamps, y_timestamp: Timestamps, pred_len: int, clip: float
) -> PreparedSeries:
    """Validate and normalise one series exactly as the reference predictor does.

    Raises ValueError on a non-DataFrame, missing price columns, NaN or infinite values, or
    timestamps whose lengths disagree with the candles or with `pred_len`.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    if pred_len < 1:
        raise ValueError(f"pred_len must be >= 1, got {pred_len}")
    missing = [c for c in PRICE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"df is missing price columns {missing} (needs {list(PRICE_COLUMNS)})")
    if len(df) == 0:
        raise ValueError("df has no rows: at least one historical candle is needed")
    if len(x_timestamp) != len(df):
        raise ValueError(f"x_timestamp has {len(x_timestamp)} entries but df has {len(df)} rows")
    if len(y_timestamp) != pred_len:
        raise ValueError(f"y_timestamp has {len(y_timestamp)} entries but pred_len is {pred_len}")
    df = df.copy()
    if "volume" not in df.columns:
        df["volume"] = 0.0
        df["amount"] = 0.0
    if "amount" not in df.columns:
        df["amount"] = df["volume"] * df[list(PRICE_COLUMNS)].mean(axis=1)
    values = df[list(CANDLE_COLUMNS)].to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError("df contains NaN values in price or volume columns")
    if not np.isfinite(values).all():
        raise ValueError("df contains infinite values in price or volume columns")
    x = values.astype(np.float32)
    mean, std = np.mean(x, axis=0), np.std(x, axis=0)
    x = np.clip((x - mean) / (std + 1e-5), -clip, clip)
    return PreparedSeries(x, time_features(x_timestamp), time_features(y_timestamp), mean, std)


class KronosPredictor:
    """Forecasts OHLCV bars with a Kronos model and tokenizer.

    A drop-in for the reference `KronosPredictor` (`predict`, `predict_batch`: same arguments,
    same preprocessing, same result), plus `forecast`, which returns every sample path with
    quantiles and takes a seed. Holds no per-call state: one instance serves many threads.

    On CUDA, the one-token decoding step of a call whose series share one history length is
    captured once as a CUDA graph and replayed for each bar (`cuda_graphs=False` turns it off):
    an eager step is bound by kernel launches, not by the GPU. On the CPU, the model's and the
    tokenizer's linear layers are packed for oneDNN (in place, a second copy of each weight),
    whose kernels run them 1.5-3x faster than the default BLAS on these shapes; results change
    in float rounding only (`onednn=False` keeps torch's default kernels).
    """

    def __init__(
        self,
        model: Kronos,
        tokenizer: KronosTokenizer,
        device: str | torch.device = "cpu",
        max_context: int = 512,
        clip: float = 5.0,
        cuda_graphs: bool = True,
        onednn: bool = True,
    ) -> None:
        if max_context < 1:
            raise ValueError(f"max_context must be >= 1, got {max_context}")
        if not clip > 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer.to(self.device).eval()
        self.max_context = max_context
        self.clip = clip
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self.onednn = onednn and self.device.type == "cpu" and onednn_available()
        if self.onednn:
            for module in (self.model, self.tokenizer):
                if next(module.parameters()).dtype == torch.float32:
                    pack_linear_layers_for_cpu(module)

    # ----------------------------------------------------------------- reference interface
    def predict(
        self,
        df: pd.DataFrame,
        x_timestamp: Timestamps,
        y_timestamp: Timestamps,
        pred_len: int,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        sample_count: int = 1,
        verbose: bool = False,
    ) -> pd.DataFrame:
        """Mean forecast (pred_len rows indexed by `y_timestamp`; columns open … amount).

        As in the reference, `top_p` is ignored when `top_k > 0`, and sampling draws from
        torch's global random generator.
        """
        return self.predict_batch(
            [df], [x_timestamp], [y_timestamp], pred_len, T, top_k, top_p, sample_count, verbose
        )[0]

    def predict_batch(
        self,
        df_list: Sequence[pd.DataFrame],
        x_timestamp_list: Sequence[Timestamps],
        y_timestamp_list: Sequence[Timestamps],
        pred_len: int,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        sample_count: int = 1,
        verbose: bool = False,
    ) -> list[pd.DataFrame]:
        """`predict` for several series in one batch; unlike the reference, lengths may differ."""
        params = SamplingParams(T, top_k, top_p, reference_top_k=True)
        series = self._prepare_all(df_list, x_timestamp_list, y_timestamp_list, pred_len)
        samples = self._generate(series, pred_len, sample_count, params, None, verbose)
        frames = []
        for one, paths, y_ts in zip(series, samples, y_timestamp_list, strict=True):
            mean = one.denormalise(np.mean(paths, axis=0))  # reference: average, then denormalise
            frames.append(pd.DataFrame(mean, columns=list(CANDLE_COLUMNS), index=y_ts))
        return frames

    # ----------------------------------------------------------------- service interface
    def forecast(
        self,
        df: pd.DataFrame,
        x_timestamp: Timestamps,
        y_timestamp: Timestamps,
        pred_len: int,
        *,
        sample_count: int = 1,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        seed: int | None = None,
        deadline: float | None = None,
    ) -> Forecast:
        """Every sample path of one series, in price units, reproducible from `seed`.

        Unlike `predict`, top-k and top-p both apply when both are set. Without a seed one is
        drawn and reported in `Forecast.seed`, so any answer can be reproduced. `deadline`, a
        `time.monotonic()` instant, stops decoding with `TimeoutError` once it has passed.
        Returns a `Forecast` with paths (sample_count, pred_len, 6) float64.
        """
        return self.forecast_batch(
            [df],
            [x_timestamp],
            [y_timestamp],
            pred_len,
            sample_count=sample_count,
            T=T,
            top_k=top_k,
            top_p=top_p,
            quantiles=quantiles,
            seed=seed,
            deadline=deadline,
        )[0]

    def forecast_batch(
        self,
        df_list: Sequence[pd.DataFrame],
        x_timestamp_list: Sequence[Timestamps],
        y_timestamp_list: Sequence[Timestamps],
        pred_len: int,
        *,
        sample_count: int = 1,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        seed: int | None = None,
        deadline: float | None = None,
    ) -> list[Forecast]:
        """`forecast` for several series decoded together (lengths may differ), one seed."""
        levels = check_quantile_levels(quantiles)
        params = SamplingParams(T, top_k, top_p, reference_top_k=False)
        series = self._prepare_all(df_list, x_timestamp_list, y_timestamp_list, pred_len)
        seed = secrets.randbits(63) if seed is None else seed
        generator = torch.Generator(device=self.device).manual_seed(seed)
        samples = self._generate(series, pred_len, sample_count, params, generator, False, deadline)
        return [
            Forecast(
                timestamps=pd.DatetimeIndex(y_ts),
                paths=one.denormalise(paths).astype(np.float64),
                quantile_levels=levels,
                seed=seed,
            )
            for one, paths, y_ts in zip(series, samples, y_timestamp_list, strict=True)
        ]

    # ----------------------------------------------------------------- decoding
    def _prepare_all(
        self,
        df_list: Sequence[pd.DataFrame],
        x_timestamp_list: Sequence[Timestamps],
        y_timestamp_list: Sequence[Timestamps],
        pred_len: int,
    ) -> list[PreparedSeries]:
        if not len(df_list) == len(x_timestamp_list) == len(y_timestamp_list):
            raise ValueError(
                "df_list, x_timestamp_list and y_timestamp_list must have the same length, got "
                f"{len(df_list)}, {len(x_timestamp_list)}, {len(y_timestamp_list)}"
            )
        if not df_list:
            raise ValueError("df_list is empty: nothing to forecast")
        prepared = []
        for i, (df, x_ts, y_ts) in enumerate(
            zip(df_list, x_timestamp_list, y_timestamp_list, strict=True)
        ):
            try:
                prepared.append(prepare_series(df, x_ts, y_ts, pred_len, self.clip))
            except ValueError as err:
                raise ValueError(f"series {i}: {err}" if len(df_list) > 1 else str(err)) from err
        return prepared

    @torch.inference_mode()
    def _generate(
        self,
        series: list[PreparedSeries],
        pred_len: int,
        sample_count: int,
        params: SamplingParams,
        generator: torch.Generator | None,
        verbose: bool,
        deadline: float | None = None,
    ) -> list[np.ndarray]:
        """Normalised sample paths, one float32 array (sample_count, pred_len, 6) per series."""
        if sample_count < 1:
            raise ValueError(f"sample_count must be >= 1, got {sample_count}")
        if pred_len > self.max_context:
            raise ValueError(
                f"pred_len ({pred_len}) must not exceed max_context ({self.max_context})"
            )
        run = _DecodeRun(self, series, pred_len, sample_count)
        steps = tqdm(range(pred_len), desc="Kronos bars", disable=not verbose, file=sys.stderr)
        try:
            for step in steps:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(
                        f"forecast passed its deadline after {step} of {pred_len} bars"
                    )
                run.step(step, params, generator)
            decoded = run.decode_paths()  # (R, pred_len, 6)
        finally:
            # Free the CUDA graph here: destroyed later by the garbage collector, it could land
            # in the middle of another capture, where CUDA forbids it.
            run.graph = None
        return [decoded[i * sample_count : (i + 1) * sample_count] for i in range(len(series))]


class _DecodeRun:
    """The state of one batched generation: R = series × samples rows, series-major.

    Row r holds its tokens left-aligned in `s1`/`s2` (R, L_max + pred_len); `stamps`
    (R, L_max + pred_len, 5) holds history then future time features. Which rows fit the window,
    where each writes and how wide each window is are known in advance from the history lengths,
    so they are planned on the host (numpy) and the decoding loop never waits on the device.
    """

    def __init__(
        self,
        predictor: KronosPredictor,
        series: list[PreparedSeries],
        pred_len: int,
        sample_count: int,
    ) -> None:
        self.model = predictor.model
        self.tokenizer = predictor.tokenizer
        self.max_context = predictor.max_context
        self.pred_len = pred_len
        self.samples = sample_count
        self.device = device = predictor.device
        lengths = np.array([len(s.x) for s in series])
        self.width = int(lengths.max()) + pred_len
        n = len(series)
        s1 = torch.zeros(n, self.width, dtype=torch.long, device=device)
        s2 = torch.zeros_like(s1)
        stamps = torch.zeros(n, self.width, 5, device=device)
        for i, one in enumerate(series):
            length = len(one.x)
            x = torch.from_numpy(one.x).to(device)[None]  # (1, L, 6)
            ids1, ids2 = self.tokenizer.encode(x, half=True)  # (1, L) each
            s1[i, :length], s2[i, :length] = ids1[0], ids2[0]
            stamps[i, :length] = torch.from_numpy(one.x_stamp)
            stamps[i, length : length + pred_len] = torch.from_numpy(one.y_stamp)
        self.history = lengths.repeat(sample_count)  # host (R,): tokens known before bar 0
        self._series_tokens = (s1, s2, stamps)  # per series, expanded after the prefill
        self.s1 = s1.repeat_interleave(sample_count, dim=0)
        self.s2 = s2.repeat_interleave(sample_count, dim=0)
        self.stamps = stamps.repeat_interleave(sample_count, dim=0)
        self.capacity = min(self.max_context, self.width)
        self.cache: KVCache = self.model.new_cache(n, self.capacity)  # one row per series at first
        self.dep_keys = torch.empty(0)
        self.dep_values = torch.empty(0)
        self.rows = torch.arange(len(self.s1), device=device)
        uniform = bool((lengths == lengths[0]).all())
        self.graph_wanted = predictor.cuda_graphs and uniform
        self.graph: _CudaGraphStep | None = None

    def _to_device(self, values: np.ndarray) -> torch.Tensor:
        """A host array on the run's device, without waiting for queued device work."""
        return torch.from_numpy(np.ascontiguousarray(values)).to(self.device, non_blocking=True)

    def _key_mask(self, valid: np.ndarray) -> torch.Tensor | None:
        """(R, 1, 1, K) mask of the first `valid[r]` keys per row, or None when all rows agree."""
        if (valid == valid[0]).all():
            return None
        keys = np.arange(int(valid.max()))
        return self._to_device(keys < valid[:, None])[:, None, None, :]

    # -- windows
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

    def _dep_project(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.cross_attn.project_memory(hidden)  # (rows, 4, T, D) each

    # -- one generated bar
    def step(self, step: int, params: SamplingParams, generator: torch.Generator | None) -> None:
        ends = self.history + step  # tokens known per row
        if step == 0:
            hidden_last, s2_context = self._prefill(ends)
        else:
            hidden_last, s2_context = self._advance(ends)
        s1_next = sample_tokens(self.model.head(hidden_last), params, generator)  # (R, 1)
        s2_logits = self._s2_logits(hidden_last, s1_next, s2_context)
        s2_next = sample_tokens(s2_logits, params, generator)
        write_at = self._to_device(ends)
        self.s1[self.rows, write_at] = s1_next[:, 0]
        self.s2[self.rows, write_at] = s2_next[:, 0]

    def _prefill(self, ends: np.ndarray) -> tuple[torch.Tensor, _S2Context]:
        """First bar: every series' window once, then its cache copied to its sample rows."""
        s1, s2, stamps, widths = self._windows(self._series_tokens, ends[:: self.samples])
        self.cache.prefill()
        hidden = self.model.hidden_states(s1, s2, stamps, self.cache)  # (N, W, d)
        self.cache.repeat_rows(self.samples)
        last_index = self._to_device(widths - 1)
        last = hidden[torch.arange(len(widths), device=self.device), last_index]  # (N, d)
        self.dep_keys, self.dep_values = (
            _padded(projected, self.capacity).repeat_interleave(self.samples, 0)
            for projected in self._dep_project(hidden)
        )
        widths = widths.repeat(self.samples)
        return last.repeat_interleave(self.samples, 0), _S2Context(widths)

    def _advance(self, ends: np.ndarray) -> tuple[torch.Tensor, _S2Context]:
        """Later bars: one cached token for rows whose window still fits, a recompute otherwise."""
        fits = ends <= self.max_context
        hidden_last = torch.empty(len(ends), self.model.d_model, device=self.device)
        context = _S2Context(np.minimum(ends, self.capacity))
        if fits.any():
            positions = np.minimum(ends - 1, self.capacity - 1)  # sliding rows: scratch slot
            steps_that_fit = min(
                self.pred_len + self.history[0] - ends[0], self.max_context - ends[0]
            )
            if self.graph is not None:
                hidden_last[:] = self.graph.replay(int(positions[0]))
            elif self.graph_wanted and steps_that_fit >= _GRAPH_MIN_STEPS:
                self.graph_wanted = False  # one capture per run, whatever happens
                self.graph, first = _CudaGraphStep.capture(self, int(positions[0]))
                hidden_last[:] = first
            else:
                at = self._to_device(positions)
                mask = self._key_mask(positions + 1)
                hidden_last[:] = self.cached_step(at, int(positions.max()) + 1, mask)
        if not fits.all():
            sliding_host = np.nonzero(~fits)[0]
            sliding = self._to_device(sliding_host)
            tokens = (self.s1[sliding], self.s2[sliding], self.stamps[sliding])
            s1, s2, stamps, _ = self._windows(tokens, ends[sliding_host])  # all max_context wide
            hidden = self.model.hidden_states(s1, s2, stamps)  # (S, C, d): the reference's pass
            hidden_last[sliding] = hidden[:, -1]
            context.recomputed = (sliding, *self._dep_project(hidden))
        return hidden_last, context

    def cached_step(
        self, at: torch.Tensor, key_len: int, key_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Each row's token at position `at[r]` through the cached model: its hidden state
        (R, d); the self-attention and dependency-layer caches gain that position."""
        self.cache.step(at, key_len, key_mask)
        new = self.model.hidden_states(
            self.s1[self.rows, at][:, None],
            self.s2[self.rows, at][:, None],
            self.stamps[self.rows, at][:, None],
            self.cache,
        )  # (R, 1, d)
        keys, values = self._dep_project(new)
        self.dep_keys[self.rows, :, at] = keys[:, :, 0]
        self.dep_values[self.rows, :, at] = values[:, :, 0]
        return new[:, 0]

    def _s2_logits(
        self, hidden_last: torch.Tensor, s1_next: torch.Tensor, context: _S2Context
    ) -> torch.Tensor:
        key_len = int(context.widths.max())
        logits = self.model.s2_logits_last(
            hidden_last,
            self.dep_keys[:, :, :key_len],
            self.dep_values[:, :, :key_len],
            s1_next,
            self._key_mask(context.widths),
        )
        if context.recomputed is not None:
            rows, keys, values = context.recomputed
            logits[rows] = self.model.s2_logits_last(hidden_last[rows], keys, values, s1_next[rows])
        return logits

    # -- the end
    def decode_paths(self) -> np.ndarray:
        """Tokenizer-decode each row's last ≤ max_context tokens; keep the generated bars.

        Returns float32 (R, pred_len, 6), normalised.
        """
        s1, s2, _, widths = self._windows(
            (self.s1, self.s2, self.stamps), self.history + self.pred_len
        )
        decoded = self.tokenizer.decode((s1, s2), half=True)  # (R, W, 6)
        index = self._to_device((widths - self.pred_len)[:, None] + np.arange(self.pred_len))
        paths = decoded.gather(1, index[..., None].expand(-1, -1, decoded.shape[-1]))
        return paths.float().cpu().numpy()


_GRAPH_MIN_STEPS = 3  # a capture costs about two eager steps


class _CudaGraphStep:
    """`_DecodeRun.cached_step` for rows at one shared position, as a replayable CUDA graph.

    The graph attends over the whole cache capacity with a mask of the filled positions, so
    its shapes never change; the position and the mask live in static tensors updated before
    each replay.
    """

    def __init__(self, rows: int, capacity: int, device: torch.device, position: int) -> None:
        # No reference back to the run: the run owns this graph, and no cycle delays its release.
        self.key_positions = torch.arange(capacity, device=device)
        self.at = torch.full((rows,), position, device=device)
        self.mask = (self.key_positions <= position).view(1, 1, 1, -1).clone()
        self.stream = torch.cuda.Stream(device)  # each capture its own stream: threads capture too
        self.graph = torch.cuda.CUDAGraph()
        self.out = torch.empty(0)

    @classmethod
    def capture(cls, run: _DecodeRun, position: int) -> tuple[_CudaGraphStep | None, torch.Tensor]:
        """Run the step at `position` eagerly (its result is returned), then capture it.

        A capture that fails is logged and leaves the run eager: (None, result).
        """
        step = cls(len(run.rows), run.capacity, run.device, position)
        current = torch.cuda.current_stream(run.device)
        step.stream.wait_stream(current)
        with torch.cuda.stream(step.stream):  # warm-up on the capture stream
            first = run.cached_step(step.at, run.capacity, step.mask)
        current.wait_stream(step.stream)
        try:
            with torch.cuda.graph(
                step.graph, stream=step.stream, capture_error_mode="thread_local"
            ):
                step.out = run.cached_step(step.at, run.capacity, step.mask)
        except RuntimeError as error:
            logger.warning("CUDA graph capture failed, decoding eagerly: %s", error)
            return None, first
        return step, first

    def replay(self, position: int) -> torch.Tensor:
        """The hidden states (R, d) of the tokens at `position`."""
        self.at.fill_(position)
        torch.le(self.key_positions, position, out=self.mask.view(-1))
        self.graph.replay()
        return self.out


@dataclass
class _S2Context:
    """Where the dependency layer's keys/values for this step come from.

    `widths` (R,): valid cached keys per row (host); `recomputed`: rows whose window slid, with
    their freshly projected keys and values.
    """

    widths: np.ndarray
    recomputed: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None


def _padded(x: torch.Tensor, length: int) -> torch.Tensor:
    """x (B, H, T, D) followed by zeros up to (B, H, length, D)."""
    out = x.new_zeros(x.shape[0], x.shape[1], length, x.shape[3])
    out[:, :, : x.shape[2]] = x
    return out
