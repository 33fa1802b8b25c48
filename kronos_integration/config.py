"""Settings of the forecasting library, from `KRONOS_*` environment variables, validated once.

`ModelSettings` says which weights to load and how to run them; `ForecastSettings` says which
backend serves and the defaults and limits of a forecast. Both are read by
`from_env()`, which raises `SettingsError` naming the variable for a value it cannot use. The
service (`app.settings.Settings`) and the command line compose them. Nothing here imports torch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

DEFAULT_MODEL_ID = "NeoQuasar/Kronos-small"
DEFAULT_TOKENIZER_ID = "NeoQuasar/Kronos-Tokenizer-base"
DTYPE_NAMES = ("float32", "bfloat16", "float16")
"""`KRONOS_DTYPE` values: the floating-point type the model computes in."""
DEFAULT_BATCH_WINDOW_MS = 20
"""How long a worker's first concurrent forecast waits for others to join its decode."""
AUTO_MODE = "auto"
"""The mode that serves the `kronos` backend, or the simulator when Kronos cannot be loaded."""

_DEVICE_PATTERN = re.compile(r"cpu|auto|cuda(:\d+)?")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

T = TypeVar("T")


class SettingsError(ValueError):
    """An environment variable holds a value that cannot be used."""

    def __init__(self, name: str, value: str, expected: str) -> None:
        super().__init__(f"{name}={value!r} is invalid: expected {expected}")
        self.variable = name


@dataclass(frozen=True)
class ModelSettings:
    """Which Kronos weights to load, from where, and how to run them."""

    model_id: str = DEFAULT_MODEL_ID
    tokenizer_id: str = DEFAULT_TOKENIZER_ID
    model_revision: str | None = None
    tokenizer_revision: str | None = None
    hf_token: str | None = field(default=None, repr=False)
    hub_timeout_s: float = 10.0
    device: str = "cpu"
    max_context: int = 512
    clip: float = 5.0
    dtype: str = "float32"
    batch_window_ms: int = DEFAULT_BATCH_WINDOW_MS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ModelSettings:
        """Read `KRONOS_MODEL_ID`, `KRONOS_DEVICE`, … (see README); SettingsError on a bad value."""
        read = EnvReader(os.environ if env is None else env)
        return cls(
            model_id=read.text("KRONOS_MODEL_ID", cls.model_id),
            tokenizer_id=read.text("KRONOS_TOKENIZER_ID", cls.tokenizer_id),
            model_revision=read.optional("KRONOS_MODEL_REVISION"),
            tokenizer_revision=read.optional("KRONOS_TOKENIZER_REVISION"),
            hf_token=read.optional("HF_TOKEN"),
            hub_timeout_s=read.number("KRONOS_HUB_TIMEOUT_S", cls.hub_timeout_s),
            device=read.matching(
                "KRONOS_DEVICE", cls.device, _DEVICE_PATTERN, "cpu, cuda, cuda:N or auto"
            ),
            max_context=read.integer("KRONOS_MAX_CONTEXT", cls.max_context, minimum=2),
            clip=read.number("KRONOS_CLIP", cls.clip),
            dtype=read.choice("KRONOS_DTYPE", cls.dtype, DTYPE_NAMES),
            batch_window_ms=read.integer(
                "KRONOS_BATCH_WINDOW_MS", cls.batch_window_ms, minimum=0, maximum=1000
            ),
        )


@dataclass(frozen=True)
class ForecastSettings:
    """Which backend serves (`mode`), where history comes from, and a forecast's defaults/limits."""

    mode: str = AUTO_MODE
    lookback: int = 400
    default_sample_count: int = 20
    max_sample_count: int = 64
    max_prediction_bars: int = 512
    data_dir: Path | None = None
    allow_synthetic_history: bool = False
    calibrate: bool = False
    calibration_origins: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ForecastSettings:
        """Read `KRONOS_MODE`, `KRONOS_LOOKBACK`, … (see README); SettingsError on a bad value."""
        from kronos_integration.backends import mode_names  # the registry knows the names

        read = EnvReader(os.environ if env is None else env)
        max_sample_count = read.integer("KRONOS_MAX_SAMPLE_COUNT", cls.max_sample_count, minimum=1)
        default_sample_count = read.integer(
            "KRONOS_SAMPLE_COUNT", cls.default_sample_count, minimum=1
        )
        if default_sample_count > max_sample_count:
            raise SettingsError(
                "KRONOS_SAMPLE_COUNT",
                str(default_sample_count),
                f"at most KRONOS_MAX_SAMPLE_COUNT ({max_sample_count})",
            )
        return cls(
            mode=read.choice("KRONOS_MODE", cls.mode, mode_names()),
            lookback=read.integer("KRONOS_LOOKBACK", cls.lookback, minimum=32),
            default_sample_count=default_sample_count,
            max_sample_count=max_sample_count,
            max_prediction_bars=read.integer(
                "KRONOS_MAX_PREDICTION_BARS", cls.max_prediction_bars, minimum=1
            ),
            data_dir=read.directory("KRONOS_DATA_DIR"),
            allow_synthetic_history=read.flag(
                "KRONOS_ALLOW_SYNTHETIC_HISTORY", cls.allow_synthetic_history
            ),
            calibrate=read.flag("KRONOS_CALIBRATE", cls.calibrate),
            calibration_origins=read.integer(
                "KRONOS_CALIBRATION_ORIGINS", cls.calibration_origins, minimum=5, maximum=200
            ),
        )


class EnvReader:
    """Typed, validated reads of environment variables; each error names its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def _parse(self, name: str, default: T, parse: Callable[[str], T], expected: str) -> T:
        raw = self.env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except ValueError:
            raise SettingsError(name, raw, expected) from None

    def text(self, name: str, default: str) -> str:
        return self._parse(name, default, str, "a non-empty string")

    def optional(self, name: str) -> str | None:
        raw = self.env.get(name, "").strip()
        return raw or None

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        bounds = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")

        def parse(raw: str) -> int:
            value = int(raw)
            if value < minimum or (maximum is not None and value > maximum):
                raise ValueError(raw)
            return value

        return self._parse(name, default, parse, bounds)

    def number(self, name: str, default: float) -> float:
        def parse(raw: str) -> float:
            value = float(raw)
            if not 0 < value < float("inf"):
                raise ValueError(raw)
            return value

        return self._parse(name, default, parse, "a positive finite number")

    def flag(self, name: str, default: bool) -> bool:
        def parse(raw: str) -> bool:
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValueError(raw)

        return self._parse(name, default, parse, "1/0, true/false, yes/no or on/off")

    def choice(
        self, name: str, default: str, choices: tuple[str, ...], *, upper: bool = False
    ) -> str:
        def parse(raw: str) -> str:
            value = raw.upper() if upper else raw.lower()
            if value not in choices:
                raise ValueError(raw)
            return value

        return self._parse(name, default, parse, " or ".join(choices))

    def matching(self, name: str, default: str, pattern: re.Pattern[str], expected: str) -> str:
        def parse(raw: str) -> str:
            if not pattern.fullmatch(raw.lower()):
                raise ValueError(raw)
            return raw.lower()

        return self._parse(name, default, parse, expected)

    def directory(self, name: str) -> Path | None:
        def parse(raw: str) -> Path:
            path = Path(raw).expanduser()
            if not path.is_dir():
                raise ValueError(raw)
            return path

        return self._parse(name, None, parse, "an existing directory")
