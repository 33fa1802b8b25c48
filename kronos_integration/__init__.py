"""Kronos OHLCV forecasting: a checkpoint-compatible model, a fast predictor, a statistical
simulator, weights from the Hugging Face Hub, and one forecasting pipeline over pluggable backends.

    from kronos_integration import Kronos, KronosTokenizer, KronosPredictor

Names are imported on first use, so `import kronos_integration.config` (what gunicorn's master
reads) does not start torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kronos_integration.model import Kronos, KronosPredictor, KronosTokenizer
    from kronos_integration.pipeline import ForecastResult, run_forecast
    from kronos_integration.request import ForecastRequest

_EXPORTS = {
    "Kronos": "kronos_integration.model",
    "KronosTokenizer": "kronos_integration.model",
    "KronosPredictor": "kronos_integration.model",
    "ForecastRequest": "kronos_integration.request",
    "ForecastResult": "kronos_integration.pipeline",
    "run_forecast": "kronos_integration.pipeline",
}
__all__ = [
    "ForecastRequest",
    "ForecastResult",
    "Kronos",
    "KronosPredictor",
    "KronosTokenizer",
    "run_forecast",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
