"""Cached decoding matches the reference algorithm, reproduces from seeds and refuses bad input."""

from __future__ import annotations

import copy
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_integration.model import Kronos, KronosTokenizer, generation
from kronos_integration.model.kernels import dtype_supported
from kronos_integration.model.module import onednn_available
from kronos_integration.predictor import ForecastJob, KronosPredictor, prepare_series
from kronos_integration.sampling import SamplingParams, sample_tokens
from tests.checkpoints import TEST_DEVICE, make_tiny_pair
from tests.reference_predictor import reference_predict

STAMPS = pd.date_range("2024-03-04 09:30", periods=400, freq="15min")


def candles(length: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, length)))
    spread = np.abs(rng.normal(0, 0.2, length))
    return pd.DataFrame(
        {
            "open": close * (1 + rng.normal(0, 0.002, length)),
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": rng.integers(100, 1000, length).astype(float),
        }
    )


@pytest.fixture(scope="module")
def predictor() -> KronosPredictor:
    model, tokenizer = make_tiny_pair(seed=1)
    return KronosPredictor(model, tokenizer, device=TEST_DEVICE, max_context=64)


@pytest.fixture(scope="module")
def oracle_weights() -> tuple[Kronos, KronosTokenizer]:
    """The predictor's weights, fresh on the CPU (the predictor may repack its own)."""
    return make_tiny_pair(seed=1)


@pytest.mark.parametrize(
    ("lookback", "pred_len"),
    [(30, 20), (64, 1), (50, 30), (90, 10), (1, 12)],
    ids=["fits", "fills-exactly", "slides", "history-longer-than-window", "one-bar-history"],
)
def test_cached_greedy_decoding_equals_full_recompute(
    predictor: KronosPredictor,
    oracle_weights: tuple[Kronos, KronosTokenizer],
    lookback: int,
    pred_len: int,
) -> None:
    """Against the independent oracle (tests/reference_predictor.py), which recomputes the
    whole window for every bar as the reference does."""
    df = candles(lookback)
    x_ts, y_ts = STAMPS[:lookback], STAMPS[lookback : lookback + pred_len]
    expected = reference_predict(
        *oracle_weights, df, x_ts, y_ts, pred_len, max_context=64, T=1.0, top_k=1, top_p=1.0
    )
    got = predictor.predict(df, x_ts, y_ts, pred_len, T=1.0, top_k=1, top_p=1.0)
    pd.testing.assert_index_equal(got.index, y_ts)
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("lookback", [40, 60])
def test_sampled_paths_equal_the_reference_under_the_same_global_seed(
    predictor: KronosPredictor, oracle_weights: tuple[Kronos, KronosTokenizer], lookback: int
) -> None:
    df, pred_len = candles(lookback, seed=2), 16
    x_ts, y_ts = STAMPS[:lookback], STAMPS[lookback : lookback + pred_len]
    torch.manual_seed(123)
    expected = reference_predict(
        *oracle_weights, df, x_ts, y_ts, pred_len, max_context=64, T=0.8, top_p=0.9,
        sample_count=4,
    )  # fmt: skip
    torch.manual_seed(123)
    got = predictor.predict(df, x_ts, y_ts, pred_len, T=0.8, top_p=0.9, sample_count=4)
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-4, atol=1e-5)


def test_predict_batch_accepts_series_of_different_lengths(predictor: KronosPredictor) -> None:
    lengths, pred_len = (12, 40, 63, 80), 8
    dfs = [candles(n, seed=n) for n in lengths]
    x_list = [STAMPS[:n] for n in lengths]
    y_list = [STAMPS[n : n + pred_len] for n in lengths]
    batch = predictor.predict_batch(dfs, x_list, y_list, pred_len, top_k=1)
    for df, x_ts, y_ts, got in zip(dfs, x_list, y_list, batch, strict=True):
        alone = predictor.predict(df, x_ts, y_ts, pred_len, top_k=1)
        np.testing.assert_allclose(got.to_numpy(), alone.to_numpy(), rtol=1e-4, atol=1e-5)


def test_forecast_returns_every_path_and_reproduces_from_its_seed(
    predictor: KronosPredictor,
) -> None:
    df, pred_len = candles(48), 10
    x_ts, y_ts = pd.Series(STAMPS[:48]), pd.Series(STAMPS[48:58])
    first = predictor.forecast(df, x_ts, y_ts, pred_len, sample_count=6, quantiles=(0.9, 0.1))
    assert first.paths.shape == (6, pred_len, 6) and first.paths.dtype == np.float64
    assert first.quantile_levels == (0.1, 0.9)
    assert first.quantiles.shape == (2, pred_len, 6)
    assert np.all(first.quantiles[0] <= first.quantiles[1])
    assert first.seed is not None
    again = predictor.forecast(df, x_ts, y_ts, pred_len, sample_count=6, seed=first.seed)
    np.testing.assert_array_equal(again.paths, first.paths)
    other = predictor.forecast(df, x_ts, y_ts, pred_len, sample_count=6, seed=first.seed + 1)
    assert not np.array_equal(other.paths, first.paths)
    assert len(np.unique(first.paths[:, -1, 3])) > 1  # sample paths really differ


def _jobs(lookback: int, shapes: list[tuple[int, int]]) -> list[ForecastJob]:
    """One job per (horizon, sample_count): its own history and seed."""
    return [
        ForecastJob(
            [candles(lookback, seed=10 + k)],
            [STAMPS[:lookback]],
            [STAMPS[lookback : lookback + horizon]],
            horizon,
            sample_count=samples,
            seed=100 + k,
        )
        for k, (horizon, samples) in enumerate(shapes)
    ]


def _paths(result: object) -> np.ndarray:
    assert isinstance(result, list), result
    return np.stack([forecast.paths for forecast in result])


# (horizon, samples): ends early, fits exactly (40 + 24 = 64), slides, ends earliest
BATCH_SHAPES = [(12, 4), (24, 3), (30, 2), (6, 8)]


@pytest.mark.parametrize("lookback", [40, 64], ids=["fits-then-slides", "slides-at-once"])
def test_a_seeded_job_gets_the_same_paths_alone_and_in_a_batch_of_four(
    predictor: KronosPredictor, lookback: int
) -> None:
    """Each job draws from its own generator: decoded with three others (other histories,
    horizons, sample counts and seeds) it gets exactly the paths it gets alone."""
    jobs = _jobs(lookback, BATCH_SHAPES)
    alone = [_paths(predictor.forecast_jobs([job])[0]) for job in jobs]
    done: list[int] = []
    batched = predictor.forecast_jobs(jobs, on_done=lambda index, _: done.append(index))
    for job, paths, result in zip(jobs, alone, batched, strict=True):
        assert paths.shape == (1, job.sample_count, job.pred_len, 6)
        np.testing.assert_array_equal(_paths(result), paths)
    assert done == [3, 0, 1, 2]  # each job as soon as its last bar is decoded
    single = predictor.forecast(
        jobs[1].df_list[0], STAMPS[:lookback], jobs[1].y_timestamp_list[0], 24,
        sample_count=3, seed=101,
    )  # fmt: skip
    np.testing.assert_array_equal(single.paths, alone[1][0])


def test_a_job_past_its_deadline_or_with_bad_input_does_not_sink_the_others(
    predictor: KronosPredictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = _jobs(40, BATCH_SHAPES)
    alone = [_paths(predictor.forecast_jobs([job])[0]) for job in jobs]
    bad = jobs[0].df_list[0].assign(close=np.nan)
    # Each read of the clock advances one second: job 1's deadline passes after the prefill.
    clock = _Clock(ticking=True)
    monkeypatch.setattr(generation, "monotonic", clock)
    jobs[0] = ForecastJob(
        [bad], jobs[0].x_timestamp_list, jobs[0].y_timestamp_list, 12, 4, seed=100
    )
    jobs[1] = ForecastJob(
        jobs[1].df_list, jobs[1].x_timestamp_list, jobs[1].y_timestamp_list, 24, 3, 101, 8.5
    )
    results = predictor.forecast_jobs(jobs)
    assert isinstance(results[0], ValueError) and "NaN" in str(results[0])
    assert isinstance(results[1], TimeoutError)
    bars_done = re.fullmatch(
        r"forecast passed its deadline after (\d+) of 24 bars", str(results[1])
    )
    assert bars_done is not None and 0 < int(bars_done[1]) < 24, results[1]
    for index in (2, 3):
        np.testing.assert_array_equal(_paths(results[index]), alone[index])


def test_timestamps_may_be_a_series_or_a_datetime_index(predictor: KronosPredictor) -> None:
    df = candles(30)
    as_index = predictor.forecast(df, STAMPS[:30], STAMPS[30:35], 5, seed=1)
    as_series = predictor.forecast(df, pd.Series(STAMPS[:30]), pd.Series(STAMPS[30:35]), 5, seed=1)
    np.testing.assert_array_equal(as_index.paths, as_series.paths)


def test_volume_and_amount_are_filled_as_the_reference_does() -> None:
    prices = candles(5)[["open", "high", "low", "close"]]
    without_volume = prepare_series(prices, STAMPS[:5], STAMPS[5:6], 1, 5.0)
    assert np.all(without_volume.mean[4:] == 0)
    with_volume = candles(5)
    series = prepare_series(with_volume, STAMPS[:5], STAMPS[5:6], 1, 5.0)
    amount = with_volume["volume"] * with_volume[["open", "high", "low", "close"]].mean(axis=1)
    assert series.mean[5] == pytest.approx(np.float32(amount.astype(np.float32).mean()), rel=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d, x, y, n: (d.assign(close=np.nan), x, y, n), "NaN"),
        (lambda d, x, y, n: (d.assign(high=np.inf), x, y, n), "infinite"),
        (lambda d, x, y, n: (d.drop(columns="low"), x, y, n), "missing price columns"),
        (lambda d, x, y, n: (d, x[:-1], y, n), "x_timestamp has 19 entries"),
        (lambda d, x, y, n: (d, x, y[:-1], n), "y_timestamp has 3 entries"),
        (lambda d, x, y, n: (d, x, y[:0], 0), "pred_len must be >= 1"),
        (lambda d, x, y, n: (d.iloc[:0], x[:0], y, n), "no rows"),
        (lambda d, x, y, n: (d.to_numpy(), x, y, n), "must be a pandas DataFrame"),
    ],
    ids=["nan", "inf", "missing-column", "x-length", "y-length", "pred-len", "empty", "not-frame"],
)
def test_bad_input_raises_value_error_with_a_clear_message(
    predictor: KronosPredictor, change, message: str
) -> None:
    df, x_ts, y_ts, pred_len = change(candles(20), STAMPS[:20], STAMPS[20:24], 4)
    with pytest.raises(ValueError, match=message):
        predictor.predict(df, x_ts, y_ts, pred_len)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_count": 0}, "sample_count"),
        ({"T": 0.0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"quantiles": (0.5, 1.0)}, "quantiles"),
    ],
)
def test_bad_sampling_arguments_raise_value_error(
    predictor: KronosPredictor, kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        predictor.forecast(candles(20), STAMPS[:20], STAMPS[20:24], 4, **kwargs)


def test_a_passed_deadline_stops_decoding(predictor: KronosPredictor) -> None:
    with pytest.raises(TimeoutError, match="deadline after 0 of 4 bars"):
        predictor.forecast(
            candles(20), STAMPS[:20], STAMPS[20:24], 4, deadline=time.monotonic() - 1
        )
    on_time = predictor.forecast(
        candles(20), STAMPS[:20], STAMPS[20:24], 4, deadline=time.monotonic() + 60
    )
    assert on_time.paths.shape == (1, 4, 6)


class _Clock:
    """A stand-in for `time.monotonic` in the decoding loop: counts reads, and advances one
    second per read when ticking."""

    def __init__(self, ticking: bool) -> None:
        self.reads = 0
        self.ticking = ticking

    def __call__(self) -> float:
        self.reads += 1
        return float(self.reads) if self.ticking else 0.0


def test_the_deadline_is_checked_inside_every_sliding_window_pass(
    predictor: KronosPredictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 5,000-bar lookback slides at every bar: each bar recomputes the window of each of
    40 sample rows, in passes of at most WINDOW_TOKENS tokens (two here), and the deadline is
    read after every layer of every pass, so a forecast stops inside a long bar, not after it."""
    lookback, pred_len, samples = 5000, 4, 40
    stamps = pd.date_range("2024-01-02 09:30", periods=lookback + pred_len, freq="5min")
    df, x_ts, y_ts = candles(lookback, seed=3), stamps[:lookback], stamps[lookback:]
    layers = len(predictor.model.transformer)
    passes = -(-samples * predictor.max_context // generation.WINDOW_TOKENS)
    assert passes == 2

    counting = _Clock(ticking=False)
    monkeypatch.setattr(generation, "monotonic", counting)
    predictor.forecast(df, x_ts, y_ts, pred_len, sample_count=samples, seed=1, deadline=1e9)
    assert counting.reads >= (pred_len - 1) * passes * layers + pred_len

    stops = []
    for deadline in range(counting.reads):
        monkeypatch.setattr(generation, "monotonic", _Clock(ticking=True))
        with pytest.raises(TimeoutError) as raised:
            predictor.forecast(
                df, x_ts, y_ts, pred_len, sample_count=samples, seed=1, deadline=deadline + 0.5
            )
        stops.append(str(raised.value))
    inside = [stop for stop in stops if f"window layer 1 of {layers}" in stop]
    assert len(inside) >= (pred_len - 1) * passes, stops
    assert all("forecast passed its deadline after" in stop for stop in stops)


def test_a_dtype_the_device_cannot_run_is_refused_naming_what_it_can() -> None:
    model, tokenizer = make_tiny_pair()
    with pytest.raises(ValueError, match=r"dtype float16 cannot run on cpu; this device supports"):
        KronosPredictor(model, tokenizer, dtype=torch.float16)
    with pytest.raises(
        ValueError, match=r"dtype must be one of \['float32', 'bfloat16', 'float16'\]"
    ):
        KronosPredictor(model, tokenizer, dtype="float64")
    assert dtype_supported("cpu", "float32") and not dtype_supported("cpu", torch.float16)


@pytest.mark.skipif(
    not dtype_supported("cpu", "bfloat16"), reason="this CPU has no native bfloat16 arithmetic"
)
def test_bfloat16_decodes_in_bfloat16_leaves_the_model_alone_and_reproduces() -> None:
    model, tokenizer = make_tiny_pair(seed=2)
    predictor = KronosPredictor(model, tokenizer, max_context=64, dtype="bfloat16")
    assert predictor.dtype == torch.bfloat16
    assert predictor.engines.step.dtype == predictor.engines.window.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())
    df, x_ts, y_ts = candles(50), STAMPS[:50], STAMPS[50:70]  # fits, then slides
    a = predictor.forecast(df, x_ts, y_ts, 20, sample_count=3, seed=1)
    b = predictor.forecast(df, x_ts, y_ts, 20, sample_count=3, seed=1)
    np.testing.assert_array_equal(a.paths, b.paths)
    assert np.isfinite(a.paths).all()


def test_pred_len_beyond_the_window_is_refused(predictor: KronosPredictor) -> None:
    with pytest.raises(ValueError, match="max_context"):
        predictor.predict(candles(20), STAMPS[:20], STAMPS[20:85], 65)


def test_reference_rule_ignores_top_p_when_top_k_is_set_and_the_combined_rule_does_not() -> None:
    # Token 0 holds ~97% of the mass: nucleus 0.5 keeps only it; top-k 3 keeps three tokens.
    logits = torch.tensor([[8.0, 4.5, 4.4, 0.0, -1.0]]).repeat(4000, 1)
    generator = torch.Generator().manual_seed(0)
    reference = SamplingParams(temperature=1.0, top_k=3, top_p=0.5, reference_top_k=True)
    combined = SamplingParams(temperature=1.0, top_k=3, top_p=0.5, reference_top_k=False)
    reference_draws = set(sample_tokens(logits, reference, generator)[:, 0].tolist())
    combined_draws = set(sample_tokens(logits, combined, generator)[:, 0].tolist())
    assert reference_draws == {0, 1, 2}
    assert combined_draws == {0}


def test_nucleus_keeps_the_token_that_crosses_top_p() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(4000, 1)
    draws = sample_tokens(logits, SamplingParams(top_p=0.7), torch.Generator().manual_seed(1))
    assert set(draws[:, 0].tolist()) == {0, 1}


requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)"
)


@requires_cuda
def test_on_cuda_each_fitting_bar_after_the_capture_is_one_graph_replay() -> None:
    model, tokenizer = make_tiny_pair(seed=4)
    predictor = KronosPredictor(model, tokenizer, device="cuda", max_context=64)
    assert predictor.engines.step.device.type == "cuda"
    assert predictor.kernels.reason == "only choice"
    df, pred_len = candles(30), 20  # 30 + 20 <= 64: every bar fits
    predictor.forecast(df, STAMPS[:30], STAMPS[30:50], pred_len, sample_count=4, seed=1)
    stats = predictor.stats
    assert (stats.graph_captures, stats.graph_failures) == (1, 0)
    # bar 0: the prefill; bar 1: decoded by the capture's warm-up; bars 2-19: replays
    assert (stats.window_bars, stats.eager_bars, stats.graph_bars) == (1, 1, pred_len - 2)


@requires_cuda
def test_cuda_graph_decoding_matches_eager_decoding_and_reproduces_from_seeds() -> None:
    """The graph samples inside the replay from the forecast's generator (graph-safe RNG): the
    same seed gives the same paths as eager decoding, and again on a second call."""
    model, tokenizer = make_tiny_pair(seed=4)
    graphed = KronosPredictor(model, tokenizer, device="cuda", max_context=64)
    eager = KronosPredictor(model, tokenizer, device="cuda", max_context=64, cuda_graphs=False)
    df, pred_len = candles(40), 20  # fits, then slides for the last bars
    x_ts, y_ts = STAMPS[:40], STAMPS[40:60]
    for top_k in (1, 0):
        a = graphed.forecast(df, x_ts, y_ts, pred_len, sample_count=4, top_k=top_k, seed=3)
        b = eager.forecast(df, x_ts, y_ts, pred_len, sample_count=4, top_k=top_k, seed=3)
        again = graphed.forecast(df, x_ts, y_ts, pred_len, sample_count=4, top_k=top_k, seed=3)
        np.testing.assert_allclose(a.paths, b.paths, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(again.paths, a.paths)
    assert graphed.stats.graph_bars > 0 and eager.stats.graph_bars == 0
    torch.manual_seed(5)  # predict draws from the global (default CUDA) generator
    a_mean = graphed.predict(df, x_ts, y_ts, pred_len, sample_count=3)
    torch.manual_seed(5)
    b_mean = eager.predict(df, x_ts, y_ts, pred_len, sample_count=3)
    np.testing.assert_allclose(a_mean.to_numpy(), b_mean.to_numpy(), rtol=1e-4, atol=1e-5)


@requires_cuda
def test_threads_capture_graphs_concurrently_and_get_the_single_threaded_results() -> None:
    model, tokenizer = make_tiny_pair(seed=7)
    predictor = KronosPredictor(model, tokenizer, device="cuda", max_context=64)
    jobs = [(length, seed) for length in (20, 28, 36) for seed in (1, 2)]

    def run(job: tuple[int, int]) -> np.ndarray:
        length, seed = job
        df, x_ts, y_ts = candles(length, seed=length), STAMPS[:length], STAMPS[length:][:16]
        return predictor.forecast(df, x_ts, y_ts, 16, sample_count=3, seed=seed).paths

    single = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(run, jobs * 3))
    for index, paths in enumerate(threaded):
        np.testing.assert_array_equal(paths, single[index % len(jobs)])
    assert predictor.stats.graph_failures == 0
    assert predictor.stats.graph_captures == 4 * len(jobs)


@requires_cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_reduced_precision_on_cuda_decodes_with_graphs_and_reproduces(dtype: str) -> None:
    if not dtype_supported("cuda", dtype):
        pytest.skip(f"this GPU does not run {dtype}")
    model, tokenizer = make_tiny_pair(seed=2)
    predictor = KronosPredictor(model, tokenizer, device="cuda", max_context=64, dtype=dtype)
    assert predictor.engines.step.dtype == getattr(torch, dtype)
    df, x_ts, y_ts = candles(30), STAMPS[:30], STAMPS[30:50]
    a = predictor.forecast(df, x_ts, y_ts, 20, sample_count=4, seed=1)
    b = predictor.forecast(df, x_ts, y_ts, 20, sample_count=4, seed=1)
    np.testing.assert_array_equal(a.paths, b.paths)
    assert np.isfinite(a.paths).all() and predictor.stats.graph_bars > 0


class _FailingCapture:
    """Stands in for `torch.cuda.graph`: entering the capture fails as CUDA can fail."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __enter__(self) -> None:
        raise RuntimeError("forced capture failure")

    def __exit__(self, *exc: object) -> None:
        return None


@requires_cuda
def test_a_failed_capture_logs_a_warning_and_decodes_eagerly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    model, tokenizer = make_tiny_pair(seed=4)
    graphed = KronosPredictor(model, tokenizer, device="cuda", max_context=64)
    eager = KronosPredictor(model, tokenizer, device="cuda", max_context=64, cuda_graphs=False)
    df, x_ts, y_ts = candles(30), STAMPS[:30], STAMPS[30:50]
    monkeypatch.setattr(torch.cuda, "graph", _FailingCapture)
    with caplog.at_level(logging.WARNING, logger="kronos_integration.model.generation"):
        a = graphed.forecast(df, x_ts, y_ts, 20, sample_count=4, seed=3)
    assert "CUDA graph capture failed, decoding eagerly: forced capture failure" in caplog.text
    assert (graphed.stats.graph_failures, graphed.stats.graph_bars) == (1, 0)
    b = eager.forecast(df, x_ts, y_ts, 20, sample_count=4, seed=3)
    np.testing.assert_allclose(a.paths, b.paths, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN kernels")
def test_onednn_and_default_kernels_give_the_same_results() -> None:
    model, tokenizer = make_tiny_pair(seed=6)
    plain = KronosPredictor(copy.deepcopy(model), copy.deepcopy(tokenizer), onednn=False)
    packed = KronosPredictor(model, tokenizer, onednn=True)
    assert (plain.kernels.step, plain.kernels.window) == ("default", "default")
    assert (packed.kernels.step, packed.kernels.window) == ("onednn", "onednn")
    assert packed.kernels.reason == "forced"
    df, x_ts, y_ts = candles(50), STAMPS[:50], STAMPS[50:70]
    for top_k in (1, 0):
        a = packed.forecast(df, x_ts, y_ts, 20, sample_count=3, top_k=top_k, seed=2)
        b = plain.forecast(df, x_ts, y_ts, 20, sample_count=3, top_k=top_k, seed=2)
        np.testing.assert_allclose(a.paths, b.paths, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN kernels")
def test_kernels_are_chosen_by_measuring_and_the_choice_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model, tokenizer = make_tiny_pair(seed=6)
    with caplog.at_level(logging.INFO, logger="kronos_integration.predictor"):
        predictor = KronosPredictor(model, tokenizer)
    choice = predictor.kernels
    assert choice.reason == "measured"
    for name in ("step", "window"):
        seconds = choice.seconds[name]
        assert set(seconds) == {"default", "onednn"} and all(s > 0 for s in seconds.values())
        assert getattr(choice, name) == min(seconds, key=seconds.__getitem__)
    assert f"step {choice.step}" in caplog.text and "measured" in caplog.text
