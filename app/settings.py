"""Every knob of the service, read from the environment once and validated once.

`Settings` composes the library's `ModelSettings` (which weights, where, on what device) and
`ForecastSettings` (mode, history, forecast defaults) with the server's own: gunicorn, request
limits, hardening, logs. `Settings.from_env()` raises `SettingsError` naming the variable for a
value it cannot use, so a misconfigured service stops at start-up. Nothing here imports torch:
gunicorn's master reads these settings, and torch must only start inside the workers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from app.log_format import LOG_FORMATS
from kronos_integration.config import EnvReader, ForecastSettings, ModelSettings, SettingsError

LogFormat = Literal["json", "text"]

LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")
INFLIGHT_PER_FORECAST = 2
"""Default in-flight slots per forecast the device runs at once: one running, one waiting its
turn (measured at 16 clients: the same forecasts/s as 4 per forecast at half the p99;
docs/production.md)."""

__all__ = ["Settings", "SettingsError", "usable_cores"]


SETTINGS_KEY = "kronos.settings"
"""Where `create_app` keeps the `Settings` (`app.extensions`)."""


def current_settings() -> Settings:
    """The settings of the app handling this request."""
    from flask import current_app  # only when called: gunicorn.conf.py reads this module first

    settings: Settings = current_app.extensions[SETTINGS_KEY]
    return settings


@dataclass(frozen=True)
class Settings:
    """The service configuration; each field's environment variable is in the README table."""

    model: ModelSettings = field(default_factory=ModelSettings)
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    # Server (gunicorn.conf.py).
    host: str = "127.0.0.1"  # this machine only; containers set 0.0.0.0 (Dockerfile)
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
    max_quantiles: int = 19
    max_batch_items: int = 16
    max_backtest_origins: int = 100
    # Hardening.
    max_inflight: int = INFLIGHT_PER_FORECAST  # x concurrent_forecasts (one waiting per running)
    concurrent_forecasts: int = 1  # default: usable cores / (workers x torch threads)
    queue_timeout_s: float = 10.0
    refusal_delay_ms: int = 250
    request_timeout_s: float = 60.0
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    log_format: LogFormat = "json"
    log_level: str = "INFO"

    @property
    def mode(self) -> str:
        """`KRONOS_MODE`: `auto` or a backend name."""
        return self.forecast.mode

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default `os.environ`); raise SettingsError on a bad value."""
        env = os.environ if env is None else env
        read = _ServiceEnvReader(env)
        workers = read.integer("KRONOS_WORKERS", cls.workers, minimum=1)
        request_timeout_s = read.number("KRONOS_REQUEST_TIMEOUT_S", cls.request_timeout_s)
        timeout_s = read.integer("KRONOS_TIMEOUT", cls.timeout_s, minimum=1)
        torch_threads = read.integer(
            "KRONOS_TORCH_THREADS", max(1, usable_cores() // workers), minimum=1
        )
        concurrent_forecasts = read.integer(
            "KRONOS_CONCURRENT_FORECASTS",
            max(1, usable_cores() // (workers * torch_threads)),
            minimum=1,
        )
        if timeout_s <= request_timeout_s:
            raise SettingsError(
                "KRONOS_TIMEOUT",
                str(timeout_s),
                f"more than KRONOS_REQUEST_TIMEOUT_S ({request_timeout_s:g})",
            )
        return cls(
            model=ModelSettings.from_env(env),
            forecast=ForecastSettings.from_env(env),
            host=read.text("KRONOS_HOST", cls.host),
            port=read.integer("KRONOS_PORT", cls.port, minimum=1, maximum=65535),
            workers=workers,
            threads=read.integer("KRONOS_THREADS", cls.threads, minimum=1),
            timeout_s=timeout_s,
            graceful_timeout_s=read.integer(
                "KRONOS_GRACEFUL_TIMEOUT", cls.graceful_timeout_s, minimum=1
            ),
            torch_threads=torch_threads,
            max_body_bytes=read.integer("KRONOS_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1024),
            max_candles=read.integer("KRONOS_MAX_CANDLES", cls.max_candles, minimum=32),
            max_horizon_days=read.integer(
                "KRONOS_MAX_HORIZON_DAYS", cls.max_horizon_days, minimum=1
            ),
            max_quantiles=read.integer("KRONOS_MAX_QUANTILES", cls.max_quantiles, minimum=1),
            max_batch_items=read.integer("KRONOS_MAX_BATCH_ITEMS", cls.max_batch_items, minimum=1),
            max_backtest_origins=read.integer(
                "KRONOS_MAX_BACKTEST_ORIGINS", cls.max_backtest_origins, minimum=1
            ),
            max_inflight=read.integer(
                "KRONOS_MAX_INFLIGHT", INFLIGHT_PER_FORECAST * concurrent_forecasts, minimum=1
            ),
            concurrent_forecasts=concurrent_forecasts,
            queue_timeout_s=read.number("KRONOS_QUEUE_TIMEOUT_S", cls.queue_timeout_s),
            refusal_delay_ms=read.integer(
                "KRONOS_REFUSAL_DELAY_MS", cls.refusal_delay_ms, minimum=0, maximum=1000
            ),
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


class _ServiceEnvReader(EnvReader):
    """The library's reader plus the service's API keys (a list and a file)."""

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
