"""Every knob of the service, read from the environment once and validated once.

`Settings.from_env()` raises `SettingsError` naming the variable for a value it cannot use, so a
misconfigured service stops at start-up instead of misbehaving later. Nothing here imports torch:
gunicorn's master reads these settings, and torch must only start inside the workers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar, cast

from app.log_format import LOG_FORMATS

Mode = Literal["auto", "kronos", "simulated"]
LogFormat = Literal["json", "text"]

MODES: tuple[str, ...] = ("auto", "kronos", "simulated")
LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")
_DEVICE_PATTERN = re.compile(r"cpu|auto|cuda(:\d+)?")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

T = TypeVar("T")


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""

    def __init__(self, name: str, value: str, expected: str) -> None:
        super().__init__(f"{name}={value!r} is invalid: expected {expected}")
        self.variable = name


@dataclass(frozen=True)
class Settings:
    """The service configuration; each field's environment variable is in the README table."""

    # Model and modes (issue 3), loading (issue 4).
    mode: Mode = "auto"
    device: str = "cpu"
    model_id: str = "NeoQuasar/Kronos-small"
    tokenizer_id: str = "NeoQuasar/Kronos-Tokenizer-base"
    model_revision: str | None = None
    tokenizer_revision: str | None = None
    hf_token: str | None = field(default=None, repr=False)
    hub_timeout_s: float = 10.0
    max_context: int = 512
    clip: float = 5.0
    lookback: int = 400
    default_sample_count: int = 8
    # History.
    data_dir: Path | None = None
    allow_synthetic_history: bool = False
    # Server (gunicorn.conf.py).
    host: str = "0.0.0.0"
    port: int = 5001
    workers: int = 2
    threads: int = 8
    timeout_s: int = 120
    graceful_timeout_s: int = 65  # above request_timeout_s: a running forecast ends by its deadline
    torch_threads: int = 1
    # Request limits (4xx naming the limit).
    max_body_bytes: int = 2 * 1024 * 1024
    max_candles: int = 5000
    max_horizon_days: int = 30
    max_prediction_bars: int = 512
    max_sample_count: int = 64
    max_quantiles: int = 19
    max_batch_items: int = 16
    # Hardening (issue 5).
    max_inflight: int = 4
    request_timeout_s: float = 60.0
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    log_format: LogFormat = "json"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default `os.environ`); raise SettingsError on a bad value."""
        read = _Reader(os.environ if env is None else env)
        workers = read.integer("KRONOS_WORKERS", cls.workers, minimum=1)
        threads = read.integer("KRONOS_THREADS", cls.threads, minimum=1)
        request_timeout_s = read.number("KRONOS_REQUEST_TIMEOUT_S", cls.request_timeout_s)
        timeout_s = read.integer("KRONOS_TIMEOUT", cls.timeout_s, minimum=1)
        if timeout_s <= request_timeout_s:
            raise SettingsError(
                "KRONOS_TIMEOUT",
                str(timeout_s),
                f"more than KRONOS_REQUEST_TIMEOUT_S ({request_timeout_s:g})",
            )
        max_context = read.integer("KRONOS_MAX_CONTEXT", cls.max_context, minimum=2)
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
            mode=cast(Mode, read.choice("KRONOS_MODE", cls.mode, MODES)),
            device=read.matching(
                "KRONOS_DEVICE", cls.device, _DEVICE_PATTERN, "cpu, cuda, cuda:N or auto"
            ),
            model_id=read.text("KRONOS_MODEL_ID", cls.model_id),
            tokenizer_id=read.text("KRONOS_TOKENIZER_ID", cls.tokenizer_id),
            model_revision=read.optional("KRONOS_MODEL_REVISION"),
            tokenizer_revision=read.optional("KRONOS_TOKENIZER_REVISION"),
            hf_token=read.optional("HF_TOKEN"),
            hub_timeout_s=read.number("KRONOS_HUB_TIMEOUT_S", cls.hub_timeout_s),
            max_context=max_context,
            clip=read.number("KRONOS_CLIP", cls.clip),
            lookback=read.integer("KRONOS_LOOKBACK", cls.lookback, minimum=32),
            default_sample_count=default_sample_count,
            data_dir=read.directory("KRONOS_DATA_DIR"),
            allow_synthetic_history=read.flag(
                "KRONOS_ALLOW_SYNTHETIC_HISTORY", cls.allow_synthetic_history
            ),
            host=read.text("KRONOS_HOST", cls.host),
            port=read.integer("KRONOS_PORT", cls.port, minimum=1, maximum=65535),
            workers=workers,
            threads=threads,
            timeout_s=timeout_s,
            graceful_timeout_s=read.integer(
                "KRONOS_GRACEFUL_TIMEOUT", cls.graceful_timeout_s, minimum=1
            ),
            torch_threads=read.integer(
                "KRONOS_TORCH_THREADS", max(1, usable_cores() // workers), minimum=1
            ),
            max_body_bytes=read.integer("KRONOS_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1024),
            max_candles=read.integer("KRONOS_MAX_CANDLES", cls.max_candles, minimum=32),
            max_horizon_days=read.integer(
                "KRONOS_MAX_HORIZON_DAYS", cls.max_horizon_days, minimum=1
            ),
            max_prediction_bars=read.integer(
                "KRONOS_MAX_PREDICTION_BARS", cls.max_prediction_bars, minimum=1
            ),
            max_sample_count=max_sample_count,
            max_quantiles=read.integer("KRONOS_MAX_QUANTILES", cls.max_quantiles, minimum=1),
            max_batch_items=read.integer("KRONOS_MAX_BATCH_ITEMS", cls.max_batch_items, minimum=1),
            max_inflight=read.integer("KRONOS_MAX_INFLIGHT", cls.max_inflight, minimum=1),
            request_timeout_s=request_timeout_s,
            api_keys=read.api_keys(),
            log_format=cast(
                LogFormat, read.choice("KRONOS_LOG_FORMAT", cls.log_format, LOG_FORMATS)
            ),
            log_level=read.choice("KRONOS_LOG_LEVEL", cls.log_level, LOG_LEVELS, upper=True),
        )


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, as a container's cpuset sets it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class _Reader:
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
        bounds = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum else "")

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

    def api_keys(self) -> tuple[str, ...]:
        keys = [k.strip() for k in self.env.get("KRONOS_API_KEYS", "").split(",")]
        file_name = self.optional("KRONOS_API_KEYS_FILE")
        if file_name is not None:
            try:
                lines = Path(file_name).read_text(encoding="utf-8").splitlines()
            except OSError:
                raise SettingsError("KRONOS_API_KEYS_FILE", file_name, "a readable file") from None
            keys.extend(line.strip() for line in lines if not line.lstrip().startswith("#"))
        return tuple(key for key in keys if key)
