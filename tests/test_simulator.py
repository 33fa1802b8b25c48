import numpy as np
import pandas as pd
import pytest

from benchmarks.real_series import vendored
from kronos_integration.calendars import exchange_calendar, future_grid
from kronos_integration.forecast import DEFAULT_QUANTILES, Forecast, check_quantile_levels
from kronos_integration.simulator import StatisticalSimulator
from tests.candles import make_candles


def _run(
    simulator: StatisticalSimulator,
    history: pd.DataFrame,
    pred_len: int = 20,
    *,
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
    seed: int | None = None,
    **kwargs,
) -> Forecast:
    """`sample_paths` as a `Forecast` on business days after the history."""
    future = pd.date_range(history.index[-1] + pd.Timedelta(days=1), periods=pred_len, freq="B")
    paths = simulator.sample_paths(history, pred_len, seed=seed, **kwargs)
    return Forecast(future, paths, check_quantile_levels(quantiles), seed)


def test_paths_have_the_forecast_shape_and_are_valid_bars():
    history = make_candles(200)
    result = _run(StatisticalSimulator(), history, sample_count=16, quantiles=(0.9, 0.1), seed=3)
    assert result.paths.shape == (16, 20, 6)
    assert result.paths.dtype == np.float64
    assert result.quantile_levels == (0.1, 0.9)
    assert result.seed == 3
    open_, high, low, close, volume, amount = np.moveaxis(result.paths, 2, 0)
    assert (high >= np.maximum(open_, close)).all()
    assert (low <= np.minimum(open_, close)).all()
    assert (low > 0).all() and (volume > 0).all() and (amount > 0).all()
    assert result.quantiles.shape == (2, 20, 6)


def test_same_seed_same_paths_other_seed_other_paths():
    history = make_candles(200)
    first = _run(StatisticalSimulator(), history, sample_count=4, seed=11)
    again = _run(StatisticalSimulator(), history, sample_count=4, seed=11)
    other = _run(StatisticalSimulator(), history, sample_count=4, seed=12)
    np.testing.assert_array_equal(first.paths, again.paths)
    assert not np.allclose(first.paths, other.paths)


def test_calibration_follows_the_history():
    calm = StatisticalSimulator().calibrate(make_candles(300, volatility=0.002))
    wild = StatisticalSimulator().calibrate(make_candles(300, volatility=0.03))
    assert 0.001 < calm.volatility < 0.004
    assert 0.015 < wild.volatility < 0.06


def test_drift_is_shrunk_to_what_the_history_supports():
    """A trend of about 1 standard error is noise (drift 0); one of 2.8 is mostly kept."""
    flat = make_candles(300, volatility=0.01)
    assert StatisticalSimulator().calibrate(flat).drift == 0.0
    rising = flat.copy()
    rising[["open", "high", "low", "close"]] *= np.exp(np.linspace(0, 0.6, 300))[:, None]
    returns = np.diff(np.log(rising["close"].to_numpy()))
    t_squared = returns.mean() ** 2 * len(returns) / returns.var()
    assert t_squared > 4
    assert StatisticalSimulator().calibrate(rising).drift == pytest.approx(
        returns.mean() * (1 - 1 / t_squared)
    )


def test_spread_grows_with_history_volatility_and_temperature():
    def spread(history, temperature=1.0):
        result = _run(
            StatisticalSimulator(), history, sample_count=400, temperature=temperature, seed=0
        )
        final = result.paths[:, -1, 3]
        return np.quantile(final, 0.9) / np.quantile(final, 0.1)

    calm, wild = make_candles(300, volatility=0.003), make_candles(300, volatility=0.03)
    assert spread(wild) > spread(calm)
    assert spread(calm, 3.0) > spread(calm, 1.0)


def test_paths_keep_the_history_drift_and_volatility_and_widen_with_the_horizon():
    history = make_candles(400, volatility=0.01)
    history[["open", "high", "low", "close"]] *= np.exp(np.linspace(0, 0.4, 400))[:, None]
    calibration = StatisticalSimulator().calibrate(history)
    result = _run(StatisticalSimulator(), history, pred_len=40, sample_count=3000, seed=5)
    closes = np.concatenate(
        [np.full((3000, 1), history["close"].iloc[-1]), result.paths[:, :, 3]], axis=1
    )
    returns = np.diff(np.log(closes), axis=1)  # (samples, bars)
    assert returns.mean() == pytest.approx(calibration.drift, abs=0.1 * calibration.volatility)
    assert returns.std() == pytest.approx(calibration.volatility, rel=0.15)
    levels = result.quantiles[:, :, 3]  # (levels 0.1, 0.5, 0.9; bars)
    width = levels[-1] - levels[0]
    assert width[-1] > 4 * width[0] and (np.diff(width[::5]) > 0).all()


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_scales_the_spread_without_compounding(temperature: float):
    history = make_candles(300, volatility=0.01)

    def terminal_spread(t: float) -> float:
        result = _run(
            StatisticalSimulator(), history, pred_len=60, sample_count=2000, temperature=t, seed=2
        )
        return float(np.log(result.paths[:, -1, 3] / history["close"].iloc[-1]).std())

    ratio = terminal_spread(temperature) / terminal_spread(1.0)
    assert ratio == pytest.approx(temperature, rel=0.2)


def test_the_largest_request_stays_finite():
    """The service's bounds: temperature 10, 512 bars."""
    result = _run(
        StatisticalSimulator(), make_candles(300), pred_len=512, sample_count=64, temperature=10
    )
    assert np.isfinite(result.paths).all()


def test_garch_fits_clustering_and_a_shock_raises_volatility_that_then_reverts():
    """Real IBM history clusters (alpha > 0); after a 6-sigma day the first bars are wilder than
    the long-run level and each later bar calmer, back towards it."""
    history = vendored("IBM").iloc[-400:].copy()
    simulator = StatisticalSimulator()
    quiet = simulator.calibrate(history)
    assert quiet.garch.alpha > 0 and quiet.garch.alpha + quiet.garch.beta < 1
    shocked = history.copy()
    jump = np.exp(6 * quiet.long_run_volatility)
    shocked.iloc[-1, shocked.columns.get_loc("close")] *= jump
    shocked.iloc[-1, shocked.columns.get_loc("high")] = shocked["close"].iloc[-1]
    calibration = simulator.calibrate(shocked)
    assert calibration.volatility > 1.5 * quiet.volatility
    result = _run(simulator, shocked, pred_len=120, sample_count=4000, seed=1)
    closes = np.concatenate(
        [np.full((4000, 1), shocked["close"].iloc[-1]), result.paths[:, :, 3]], axis=1
    )
    per_bar = np.diff(np.log(closes), axis=1).std(axis=0)  # (bars,)
    assert per_bar[:5].mean() > 1.2 * calibration.long_run_volatility
    assert per_bar[:5].mean() > per_bar[20:40].mean() > per_bar[100:].mean()
    assert per_bar[100:].mean() == pytest.approx(calibration.long_run_volatility, rel=0.15)


def test_residuals_keep_the_heavy_tails_of_real_returns():
    calibration = StatisticalSimulator().calibrate(vendored("MSFT").iloc[-400:])
    residuals = calibration.residuals
    assert residuals.mean() == pytest.approx(0.0, abs=1e-12)
    assert residuals.std() == pytest.approx(1.0)
    kurtosis = np.mean(residuals**4)
    assert kurtosis > 3.5  # a normal's is 3


def test_no_volume_history_gives_zero_volume_paths():
    history = make_candles(60)[["open", "high", "low", "close"]]
    result = _run(StatisticalSimulator(), history, sample_count=2, seed=0)
    assert (result.paths[:, :, 4:] == 0).all()


def test_intraday_history_with_the_grid():
    history = make_candles(200, freq="5min", start="2025-03-03 09:30")
    history = history.iloc[history.index.indexer_between_time("09:30", "15:55")]
    grid = future_grid(pd.DatetimeIndex(history.index), 2, exchange_calendar("XNYS"))
    paths = StatisticalSimulator().sample_paths(
        history, len(grid.timestamps), sample_count=3, seed=1
    )
    assert paths.shape == (3, len(grid.timestamps), 6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pred_len": 0}, "pred_len"),
        ({"sample_count": 0}, "sample_count"),
        ({"temperature": 0.0}, "temperature"),
        ({"nan": True}, "NaN"),
        ({"drop": "close"}, "missing column"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    history = make_candles(60)
    if kwargs.pop("nan", False):
        history.iloc[4, 3] = np.nan
    if "drop" in kwargs:
        history = history.drop(columns=[kwargs.pop("drop")])
    pred_len = kwargs.pop("pred_len", 5)
    with pytest.raises(ValueError, match=message):
        StatisticalSimulator().sample_paths(history, pred_len, **kwargs)
