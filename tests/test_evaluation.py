"""Backtests, scores, confidence and conformal calibration on real vendored series."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from benchmarks.real_series import vendored
from kronos_integration.backends.simulated import SimulatedBackend
from kronos_integration.calendars import exchange_calendar
from kronos_integration.confidence import band_confidence, day_confidence
from kronos_integration.conformal import apply_conformal, conformal_forecaster, fit_conformal
from kronos_integration.evaluation import metrics
from kronos_integration.evaluation.backtest import (
    BacktestConfig,
    pooled,
    run_backtest,
    score_frame,
    summarize,
)
from kronos_integration.evaluation.forecasters import (
    Window,
    from_backend,
    gaussian_random_walk,
    random_walk,
)

NYSE = exchange_calendar("XNYS")


def _simulated(samples: int = 64, temperature: float = 1.0):
    return from_backend(SimulatedBackend(512), samples, temperature=temperature)


def test_metrics_of_a_calibrated_gaussian_ensemble():
    rng = np.random.default_rng(0)
    observed = rng.normal(size=4000)
    samples = np.tile(scipy.stats.norm.ppf((np.arange(200) + 0.5) / 200), (4000, 1))
    assert metrics.covered(samples, observed, 0.8).mean() == pytest.approx(0.8, abs=0.02)
    assert metrics.pit_histogram(metrics.pit(samples, observed, rng)) == pytest.approx(
        [0.1] * 10, abs=0.02
    )
    # CRPS of N(0, 1) for a standard normal observation is 1/sqrt(pi) on average.
    assert metrics.crps(samples, observed).mean() == pytest.approx(1 / np.sqrt(np.pi), rel=0.03)
    shifted = samples + 1.0
    assert (
        metrics.pinball(samples, observed, (0.1, 0.5, 0.9)).mean()
        < metrics.pinball(shifted, observed, (0.1, 0.5, 0.9)).mean()
    )
    assert metrics.brier(samples, observed, 0.0).mean() == pytest.approx(0.25, abs=0.01)


def test_reliability_bins_follow_calibrated_probabilities_and_expose_overconfidence():
    rng = np.random.default_rng(1)
    p_up = rng.uniform(size=5000)
    up = rng.uniform(size=5000) < p_up  # P(up) means what it says
    bins = metrics.reliability(p_up, up)
    assert [b["n"] for b in bins] == [500] * 10
    assert [b["p_up"] for b in bins] == sorted(b["p_up"] for b in bins)
    assert [b["observed"] for b in bins] == pytest.approx([b["p_up"] for b in bins], abs=0.06)
    overconfident = metrics.reliability(np.clip(0.5 + 2 * (p_up - 0.5), 0, 1), up)
    assert overconfident[1]["observed"] > overconfident[1]["p_up"] + 0.1  # says 0, saw 15 %
    assert overconfident[-2]["observed"] < overconfident[-2]["p_up"] - 0.1
    assert [b["n"] for b in metrics.reliability(p_up[:4], up[:4])] == [1, 1, 1, 1]
    assert metrics.reliability(p_up[:0], up[:0]) == []


def test_simulator_bands_hold_on_the_vendored_series():
    """IBM and MSFT, 200 origins each (as `benchmarks.calibration`), 64 samples, seed 0: 80 %
    and 90 % bands within 4 points of nominal at 1, 5 and 20 sessions; pinball no worse than a
    Gaussian random walk; Brier at most 0.255; every forecast date a real NYSE session."""
    models = {"simulated": _simulated(), "gaussian_random_walk": gaussian_random_walk(64)}
    frames = [
        score_frame(run_backtest(vendored(n), models, NYSE, BacktestConfig(origins=200)), series=n)
        for n in ("IBM", "MSFT")
    ]
    summary = summarize(pooled(frames))
    for horizon, scores in summary["models"]["simulated"]["horizons"].items():
        assert abs(scores["coverage_0.8"] - 0.8) <= 0.04, horizon
        assert abs(scores["coverage_0.9"] - 0.9) <= 0.04, horizon
        assert scores["pinball_vs_baseline"] <= 1.0, horizon
        assert scores["brier"] <= 0.255, horizon
        assert scores["date_accuracy"] == 1.0, horizon


def test_confidence_ranks_volatility_scaled_errors():
    """IBM and MSFT, 200 origins each, all horizons pooled (the most confident tenth: 120)."""
    frames = [
        score_frame(
            run_backtest(vendored(name), {"simulated": _simulated()}, NYSE),
            confidence={"simulated": band_confidence},
        )
        for name in ("IBM", "MSFT")
    ]
    ranking = summarize(pooled(frames))["models"]["simulated"]["confidence"]
    assert ranking["spearman_vs_scaled_error"] < -0.05
    assert ranking["top_tenth"]["coverage_0.8"] >= 0.75
    quintiles = ranking["scaled_error_by_quintile"]
    assert quintiles[-1] < quintiles[0]


def test_confidence_formula():
    """A band exactly as wide as the history's random walk gives 0.5, half as wide 0.8."""
    z = scipy.stats.norm.ppf((np.arange(1000) + 0.5) / 1000)
    sigma, steps = 0.01, np.array([1.0, 4.0])
    ratios = np.exp(sigma * np.sqrt(steps)[:, None] * z[None, :])  # (D, S)
    assert band_confidence(ratios, np.asarray(sigma), steps) == pytest.approx([0.5, 0.5], abs=0.01)
    assert band_confidence(ratios**0.5, np.asarray(sigma), steps) == pytest.approx(
        [0.8, 0.8], abs=0.01
    )
    closes = 100 * ratios.T
    history = 100 * np.exp(np.cumsum(np.r_[0, np.tile([sigma, -sigma], 50)]))
    assert day_confidence(closes, 100.0, history, [1, 4]) == pytest.approx([0.5, 0.5], abs=0.02)
    assert day_confidence(closes[:1], 100.0, history, [1, 4]) == [None, None]


@pytest.mark.parametrize(("temperature", "wider"), [(0.4, True), (2.0, False)])
def test_conformal_widens_narrow_bands_and_narrows_wide_ones(temperature: float, wider: bool):
    history = vendored("IBM").iloc[-400:]
    fit = fit_conformal(history, _simulated(temperature=temperature), 20, seed=1)
    assert fit.calibrated and fit.origins == 30 and fit.checked_steps == 20
    assert (fit.factors > 1.2).all() if wider else (fit.factors < 0.85).all()
    window = Window(history, pd.bdate_range(history.index[-1], periods=21)[1:], 5)
    paths = _simulated(temperature=temperature)([window])[0]
    adjusted = apply_conformal(paths, fit)
    close = adjusted[:, :, 3]
    np.testing.assert_allclose(
        np.median(np.log(close), axis=0), np.median(np.log(paths[:, :, 3]), axis=0)
    )
    assert (adjusted[:, :, 1] >= np.maximum(adjusted[:, :, 0], close)).all()
    assert (adjusted[:, :, 2] <= np.minimum(adjusted[:, :, 0], close)).all()


def test_conformal_brings_a_too_narrow_backend_towards_nominal():
    narrow = _simulated(temperature=0.4)
    models = {"narrow": narrow, "calibrated": conformal_forecaster(narrow)}
    result = run_backtest(vendored("MSFT"), models, NYSE, BacktestConfig((1, 5), origins=60))
    coverage = score_frame(result).groupby("model")["covered_0.8"].mean()
    assert coverage["narrow"] < 0.6
    assert coverage["calibrated"] > coverage["narrow"] + 0.1


def test_conformal_says_when_the_history_is_too_short():
    fit = fit_conformal(vendored("IBM").iloc[-120:], random_walk, 20)
    assert not fit.calibrated and fit.origins == 0
    assert "120 bars" in fit.reason
    assert fit.metadata()["calibrated"] is False
