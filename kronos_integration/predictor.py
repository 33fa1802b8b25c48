"""`KronosPredictor`: the reference predictor's interface and results, decoded with a KV cache.

Per series: normalise the candles, encode the whole history into tokens, then for each future bar
run the model on the last `max_context` tokens, sample s1 then s2, and append. The decoding itself
(cache, sliding windows, CUDA graphs, deadlines) is `kronos_integration.model.generation`; this
module validates and prepares the input, picks kernels and dtype, and shapes the results.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from kronos_integration.forecast import (
    CANDLE_COLUMNS,
    DEFAULT_QUANTILES,
    PRICE_COLUMNS,
    Forecast,
    check_quantile_levels,
)
from kronos_integration.model import Kronos, KronosTokenizer
from kronos_integration.model.decoder import FusedKronos
from kronos_integration.model.generation import (
    AllStreamsStopped,
    DecodeRun,
    DecodeStats,
    Engines,
    History,
    Outcome,
    Stream,
)
from kronos_integration.model.kernels import KERNELS, check_dtype, dtype_name
from kronos_integration.model.module import onednn_available, pack_linear_layers_for_cpu
from kronos_integration.model.tuning import KernelChoice, choose_kernels, forced_kernels
from kronos_integration.sampling import SamplingParams

logger = logging.getLogger(__name__)

Timestamps = pd.Series | pd.DatetimeIndex
JobResult = list[Forecast] | Exception
"""A job's forecasts (one per series), or why it has none (ValueError, TimeoutError, …)."""


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


@dataclass(frozen=True)
class ForecastJob:
    """One `forecast_batch` call's arguments, as a job of `forecast_jobs`."""

    df_list: Sequence[pd.DataFrame]
    x_timestamp_list: Sequence[Timestamps]
    y_timestamp_list: Sequence[Timestamps]
    pred_len: int
    sample_count: int = 1
    seed: int | None = None
    deadline: float | None = None


@dataclass(frozen=True)
class _PreparedJob:
    index: int
    series: list[PreparedSeries]
    job: ForecastJob
    seed: int


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

    The model runs through `FusedKronos` (fused projections, a second copy of its weights in
    `dtype`, read once here: build a new predictor after changing the weights; the model
    itself is left as given). On the CPU, each pass uses the faster of torch's default kernels
    and oneDNN's, measured here at construction (`onednn=None`; True or False forces one); the
    choice is `self.kernels` and logged. On CUDA, each bar of a forecast
    whose series share one history length is one CUDA graph replay (`cuda_graphs=False` turns
    it off; a failed capture logs a warning and decodes eagerly). `dtype` float32 (default)
    reproduces the reference to float rounding; bfloat16 (CPUs with native bf16, CUDA) and
    float16 (CUDA) trade exactness for speed. `self.engines` are the fused passes,
    `self.stats` counts how bars were decoded.
    """

    def __init__(
        self,
        model: Kronos,
        tokenizer: KronosTokenizer,
        device: str | torch.device = "cpu",
        max_context: int = 512,
        clip: float = 5.0,
        cuda_graphs: bool = True,
        onednn: bool | None = None,
        dtype: torch.dtype | str = torch.float32,
    ) -> None:
        if max_context < 1:
            raise ValueError(f"max_context must be >= 1, got {max_context}")
        if not clip > 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        self.device = torch.device(device)
        self.dtype = check_dtype(self.device, dtype)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer.to(self.device).eval()
        self.max_context = max_context
        self.clip = clip
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self.kernels, self.engines = self._build_engines(onednn)
        if self.kernels.window == "onednn" and next(tokenizer.parameters()).dtype == torch.float32:
            pack_linear_layers_for_cpu(self.tokenizer)
        self.stats = DecodeStats()
        logger.info(
            "Kronos predictor on %s in %s; kernels: %s",
            self.device,
            dtype_name(self.dtype),
            self.kernels.describe(),
        )

    def _build_engines(self, onednn: bool | None) -> tuple[KernelChoice, Engines]:
        """The model's fused passes, with each pass's kernel measured (`onednn` None) or forced."""
        if onednn is None and self.device.type == "cpu" and onednn_available():
            with torch.inference_mode():
                built = {k: FusedKronos(self.model, k, self.dtype) for k in KERNELS}
            choice = choose_kernels(built)
        else:
            choice = forced_kernels(self.device, bool(onednn))
            with torch.inference_mode():
                built = {
                    k: FusedKronos(self.model, k, self.dtype) for k in {choice.step, choice.window}
                }
        return choice, Engines(step=built[choice.step], window=built[choice.window])

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
        samples = self._generate(series, pred_len, sample_count, params, verbose)
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
        job = ForecastJob(
            df_list, x_timestamp_list, y_timestamp_list, pred_len, sample_count, seed, deadline
        )
        (result,) = self.forecast_jobs([job], T=T, top_k=top_k, top_p=top_p, quantiles=quantiles)
        if isinstance(result, Exception):
            raise result
        return result

    def forecast_jobs(
        self,
        jobs: Sequence[ForecastJob],
        *,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        on_done: Callable[[int, JobResult], None] | None = None,
    ) -> list[JobResult]:
        """Several `forecast_batch` calls decoded as one batch, each job with its own seed,
        horizon, sample count and deadline.

        A job's forecasts are the ones `forecast_batch` gives it alone: it draws from its own
        generator, in the shapes it would alone (float rounding of the batched products aside).
        A job that cannot be forecast gets its ValueError, one whose deadline passes its
        TimeoutError (the others go on), so every job has a result: its forecasts or its
        exception, in job order, each also handed to `on_done(job_index, result)` as soon as it
        is known (a short horizon before a long one ends). Sampling arguments apply to all
        jobs: a bad one raises ValueError for the call.
        """
        levels = check_quantile_levels(quantiles)
        params = SamplingParams(T, top_k, top_p, reference_top_k=False)
        results: dict[int, JobResult] = {}

        def settle(index: int, result: JobResult) -> None:
            results[index] = result
            if on_done is not None:
                on_done(index, result)

        prepared: list[_PreparedJob] = []
        for index, job in enumerate(jobs):
            try:
                series = self._prepare_all(
                    job.df_list, job.x_timestamp_list, job.y_timestamp_list, job.pred_len
                )
                self._check_decoding(job.pred_len, job.sample_count)
            except ValueError as error:
                settle(index, error)
                continue
            seed = secrets.randbits(63) if job.seed is None else job.seed
            prepared.append(_PreparedJob(index, series, job, seed))

        def stream_done(position: int, outcome: Outcome) -> None:
            one = prepared[position]
            if isinstance(outcome, TimeoutError):
                settle(one.index, outcome)
            else:
                settle(one.index, self._forecasts(one, outcome, levels))

        if prepared:
            streams = [
                Stream(
                    [History(s.x, s.x_stamp, s.y_stamp) for s in one.series],
                    one.job.pred_len,
                    one.job.sample_count,
                    torch.Generator(device=self.device).manual_seed(one.seed),
                    one.job.deadline,
                )
                for one in prepared
            ]
            try:
                with torch.inference_mode():
                    self.stream_run(streams, params, stream_done).run_streams()
            except AllStreamsStopped:
                pass  # every job has its TimeoutError
            except Exception as error:  # the batch failed as a whole: each job says so
                logger.exception("a batch of %d forecasts failed", len(prepared))
                for one in prepared:
                    if one.index not in results:
                        settle(one.index, error)
        return [results[index] for index in range(len(jobs))]

    @staticmethod
    def _forecasts(one: _PreparedJob, decoded: np.ndarray, levels: tuple[float, ...]) -> JobResult:
        """The job's decoded paths (series × samples, pred_len, 6) as one Forecast per series."""
        samples = one.job.sample_count
        return [
            Forecast(
                timestamps=pd.DatetimeIndex(y_ts),
                paths=series.denormalise(decoded[i * samples : (i + 1) * samples]).astype(
                    np.float64
                ),
                quantile_levels=levels,
                seed=one.seed,
            )
            for i, (series, y_ts) in enumerate(
                zip(one.series, one.job.y_timestamp_list, strict=True)
            )
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
        verbose: bool,
    ) -> list[np.ndarray]:
        """Normalised sample paths, one float32 array (sample_count, pred_len, 6) per series,
        drawn from torch's global generator."""
        self._check_decoding(pred_len, sample_count)
        histories = [History(s.x, s.x_stamp, s.y_stamp) for s in series]
        run = self.decode_run(histories, pred_len, sample_count, params, None)
        decoded = run.run(verbose)  # (R, pred_len, 6)
        return [decoded[i * sample_count : (i + 1) * sample_count] for i in range(len(series))]

    def _check_decoding(self, pred_len: int, sample_count: int) -> None:
        if sample_count < 1:
            raise ValueError(f"sample_count must be >= 1, got {sample_count}")
        if pred_len > self.max_context:
            raise ValueError(
                f"pred_len ({pred_len}) must not exceed max_context ({self.max_context})"
            )

    def decode_run(
        self,
        histories: Sequence[History],
        pred_len: int,
        sample_count: int,
        params: SamplingParams,
        generator: torch.Generator | None,
        deadline: float | None = None,
    ) -> DecodeRun:
        """A generation of `sample_count` paths per history with this predictor's passes and
        settings (for tools that want the tokens: `run.bar(i)` for each bar, then `run.s1`)."""
        stream = Stream(histories, pred_len, sample_count, generator, deadline)
        return self.stream_run([stream], params)

    def stream_run(
        self,
        streams: Sequence[Stream],
        params: SamplingParams,
        on_done: Callable[[int, Outcome], None] | None = None,
    ) -> DecodeRun:
        """A generation of several streams together with this predictor's passes and settings."""
        return DecodeRun(
            self.engines,
            self.tokenizer,
            streams,
            params,
            max_context=self.max_context,
            cuda_graphs=self.cuda_graphs,
            stats=self.stats,
            on_done=on_done,
        )
