"""Sampled decoding reproduces the published reference under the same global seed.

`expected.json`'s `sampled_predictions` were made by the reference predictor with
`torch.manual_seed(seed)` immediately before `predict(...)` (torch 2.13, CPU), in three window
regimes and with both tiny weight sets. A `predict` that draws from the global generator in the
reference's order reproduces them up to float rounding; one that draws in another order or from
its own generator differs in whole tokens, far beyond the tolerance. The independent oracle in
`tests/reference_predictor.py` is held to the same published outputs (greedy and sampled), so
tests may compare against it where no golden case exists.

The reference ran on the CPU, and CUDA's generator draws other numbers from the same seed: these
cases always decode on the CPU, whatever `KRONOS_TEST_DEVICE` says.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_integration.model import Kronos, KronosTokenizer
from kronos_integration.predictor import KronosPredictor
from tests import golden_data
from tests.reference_predictor import reference_predict

SAMPLED_RTOL = 1e-5
"""The README's bound for a drop-in `predict`: float rounding only."""
ROUNDING_ATOL = 5e-6
"""`prediction` is rounded to 5 decimals."""


def _inputs(case: dict[str, Any]) -> tuple[pd.DataFrame, pd.Series, pd.Series, int]:
    history = golden_data.candles().iloc[-case["lookback"] :]
    pred_len = case["pred_len"]
    future = golden_data.future()[:pred_len]
    return history.drop(columns="timestamps"), history["timestamps"], future, pred_len


def _sampling(case: dict[str, Any]) -> dict[str, Any]:
    """The case's sampling as `predict` keyword arguments (T, top_k, top_p, sample_count)."""
    return {k: v for k, v in case["sampling"].items() if k != "seed"}


def _predictor(case: dict[str, Any]) -> KronosPredictor:
    return KronosPredictor(
        golden_data.model(case["weights"]),
        golden_data.tokenizer(),
        device="cpu",
        max_context=case["max_context"],
        clip=case["clip"],
    )


def _predict(predictor: KronosPredictor, case: dict[str, Any]) -> np.ndarray:
    """The case's forecast (pred_len, 6), drawing from the global generator as it stands."""
    return predictor.predict(*_inputs(case), **_sampling(case)).to_numpy()


Models = tuple[Kronos, KronosTokenizer]


def _models(case: dict[str, Any]) -> Models:
    """The case's weights, loaded apart from any predictor (which packs them for oneDNN)."""
    return golden_data.model(case["weights"]), golden_data.tokenizer()


def _oracle(models: Models, case: dict[str, Any]) -> np.ndarray:
    """The independent oracle's forecast (pred_len, 6), from the global generator as it stands."""
    model, tokenizer = models
    return reference_predict(
        model,
        tokenizer,
        *_inputs(case),
        max_context=case["max_context"],
        clip=case["clip"],
        **_sampling(case),
    )


def _seeded_predict(case: dict[str, Any]) -> pd.DataFrame:
    predictor = _predictor(case)
    torch.manual_seed(case["sampling"]["seed"])
    return predictor.predict(*_inputs(case), **_sampling(case))


@pytest.mark.parametrize("case", golden_data.prediction_cases("sampled_predictions"))
def test_sampled_predictions_match_the_reference_under_its_seed(case: dict[str, Any]) -> None:
    result = _seeded_predict(case)
    assert list(result.index) == list(golden_data.future()[: case["pred_len"]])
    assert list(result.columns) == ["open", "high", "low", "close", "volume", "amount"]
    np.testing.assert_allclose(
        result.to_numpy(), case["prediction"], rtol=SAMPLED_RTOL, atol=ROUNDING_ATOL
    )


def test_the_cases_cover_every_regime_both_weight_sets_and_both_filters() -> None:
    cases = golden_data.expected()["sampled_predictions"]
    covered = {(c["name"], c["weights"], c["sampling"]["top_k"] > 0) for c in cases}
    regimes = {"fits_window", "sliding_window", "history_longer_than_window"}
    assert covered == {(r, w, k) for r in regimes for w in golden_data.WEIGHTS for k in (0, 1)}
    for case in cases:  # the regime names say what the window does
        history_and_future = case["lookback"] + case["pred_len"]
        if case["name"] == "fits_window":
            assert history_and_future <= case["max_context"]
        elif case["name"] == "sliding_window":
            assert case["lookback"] <= case["max_context"] < history_and_future
        else:
            assert case["lookback"] > case["max_context"]


def test_another_seed_gives_another_forecast() -> None:
    """The tolerance above is tight enough to tell seeds apart: sampling really samples."""
    case = golden_data.expected()["sampled_predictions"][0]
    other = _seeded_predict({**case, "sampling": {**case["sampling"], "seed": 8}})
    assert not np.allclose(other.to_numpy(), case["prediction"], rtol=1e-3)


@pytest.mark.parametrize(
    "case",
    golden_data.prediction_cases("sampled_predictions")
    + golden_data.prediction_cases("greedy_predictions"),
)
def test_the_independent_oracle_reproduces_the_reference(case: dict[str, Any]) -> None:
    models = _models(case)  # loaded first: building a model draws from the generator
    torch.manual_seed(case["sampling"].get("seed", 0))
    got = _oracle(models, case)
    np.testing.assert_allclose(got, case["prediction"], rtol=SAMPLED_RTOL, atol=ROUNDING_ATOL)


def test_predict_leaves_the_global_generator_where_the_reference_does() -> None:
    """One seed, then two forecasts: the second draws where the first left the global generator,
    as in the reference. A private generator (even one seeded from `torch.initial_seed()`, which
    passes every single-call case above) would repeat the first call's draws."""
    cases = golden_data.expected()["sampled_predictions"]
    first, second = cases[0], cases[4]  # fits_window, then history_longer_than_window
    predictors = _predictor(first), _predictor(second)  # all loaded before seeding
    models = _models(first), _models(second)
    torch.manual_seed(first["sampling"]["seed"])
    got = [_predict(predictors[0], first), _predict(predictors[1], second)]
    torch.manual_seed(first["sampling"]["seed"])
    expected = [_oracle(models[0], first), _oracle(models[1], second)]
    np.testing.assert_allclose(got[0], first["prediction"], rtol=SAMPLED_RTOL, atol=ROUNDING_ATOL)
    np.testing.assert_allclose(got[1], expected[1], rtol=SAMPLED_RTOL, atol=ROUNDING_ATOL)
