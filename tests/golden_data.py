"""The golden vectors in `tests/golden/` (see its ORIGIN.md): the reference run's candles, future
timestamps, tiny checkpoints and expected outputs, read once per test session."""

from __future__ import annotations

import functools
import json
from typing import Any

import pandas as pd
import pytest

from kronos_integration.model import Kronos, KronosTokenizer
from tests.checkpoints import GOLDEN

WEIGHTS = {"model": "tiny-model", "model_fixed_te": "tiny-model-fixed-te"}
"""Folder of each weight set the expected outputs name (`case["weights"]`)."""


@functools.cache
def expected() -> dict[str, Any]:
    """`expected.json`: token ids, logits, greedy and sampled predictions of the reference."""
    result: dict[str, Any] = json.loads((GOLDEN / "expected.json").read_text())
    return result


def candles() -> pd.DataFrame:
    """The 400 real 5-minute bars: timestamps, open, high, low, close, volume, amount."""
    return pd.read_csv(GOLDEN / "candles.csv", parse_dates=["timestamps"])


def future() -> pd.Series:
    """The 80 timestamps that follow `candles()`."""
    return pd.read_csv(GOLDEN / "future_timestamps.csv", parse_dates=["timestamps"])["timestamps"]


def model(weights: str) -> Kronos:
    """The tiny reference model of a case's `weights` ("model" or "model_fixed_te")."""
    return Kronos.from_pretrained(str(GOLDEN / WEIGHTS[weights]))


def tokenizer() -> KronosTokenizer:
    return KronosTokenizer.from_pretrained(str(GOLDEN / "tiny-tokenizer"))


def prediction_cases(kind: str) -> list[Any]:
    """`greedy_predictions` or `sampled_predictions` as pytest params (regime-weights[-seed])."""
    params = []
    for case in expected()[kind]:
        seed = case["sampling"].get("seed")
        name = f"{case['name']}-{case['weights']}" + ("" if seed is None else f"-seed{seed}")
        params.append(pytest.param(case, id=name))
    return params
