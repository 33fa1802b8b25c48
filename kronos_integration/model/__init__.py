"""Checkpoint-compatible Kronos model and tokenizer, and the predictor, in upstream's layout:
`from kronos_integration.model import Kronos, KronosTokenizer, KronosPredictor`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kronos_integration.model.kronos import Kronos, KronosTokenizer

if TYPE_CHECKING:
    from kronos_integration.predictor import KronosPredictor

__all__ = ["Kronos", "KronosPredictor", "KronosTokenizer"]


def __getattr__(name: str) -> Any:
    if name == "KronosPredictor":  # imported on first use: the predictor imports this package
        from kronos_integration.predictor import KronosPredictor

        return KronosPredictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
