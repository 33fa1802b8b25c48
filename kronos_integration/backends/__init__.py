"""The backend registry: names to factories, and loading the backend a mode asks for.

A backend is one module with a `load(settings: ModelSettings) -> Backend` function and one line in
`BACKENDS` (or a `register_backend` call), after which its name is a valid `KRONOS_MODE` and a
`--mode` of the command line. Factories are imported only when used, so `simulated` never imports
torch. `auto` loads `kronos` and falls back to `simulated`, remembering why: in full in the log,
and as a redacted line (no paths, no tensors; `redact_detail`) for clients.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kronos_integration.config import AUTO_MODE, ModelSettings, SettingsError
from kronos_integration.redact import mask_secrets, redact_detail

if TYPE_CHECKING:  # the protocol's module imports pandas; gunicorn's master reads mode_names()
    from kronos_integration.backends.base import Backend

logger = logging.getLogger(__name__)

BackendFactory = Callable[[ModelSettings], "Backend"]
BACKENDS: dict[str, str | BackendFactory] = {
    "kronos": "kronos_integration.backends.kronos:load",
    "simulated": "kronos_integration.backends.simulated:load",
    "random_walk": "kronos_integration.backends.random_walk:load",
}
"""Backend name -> factory, or `module:function` of one (imported on first use)."""

AUTO_PRIMARY = "kronos"
AUTO_FALLBACK = "simulated"

__all__ = [
    "BACKENDS",
    "LoadedBackend",
    "create_backend",
    "load_backend",
    "mode_names",
    "register_backend",
]


def register_backend(name: str, factory: str | BackendFactory) -> None:
    """Make `name` a backend (and a mode) built by `factory(settings)`."""
    if name == AUTO_MODE:
        raise ValueError(f"{AUTO_MODE!r} is a mode, not a backend name")
    BACKENDS[name] = factory


def mode_names() -> tuple[str, ...]:
    """Every valid mode: `auto` and each registered backend."""
    return (AUTO_MODE, *BACKENDS)


def create_backend(name: str, settings: ModelSettings) -> Backend:
    """Build the backend registered as `name`; KeyError for an unknown name."""
    factory = BACKENDS[name]
    if isinstance(factory, str):
        module_name, _, attribute = factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
    return factory(settings)


@dataclass(frozen=True)
class LoadedBackend:
    """The backend a mode ended up with, why it is not the one asked for (`auto` only; one
    redacted line a client may read), and how long loading and warm-up took."""

    backend: Backend
    fallback_reason: str | None
    load_seconds: float


def load_backend(
    mode: str, settings: ModelSettings, warm_up: Callable[[Backend], object]
) -> LoadedBackend:
    """Create and warm up the backend for `mode` (`warm_up(backend)` runs one small forecast).

    In `auto` mode a Kronos model that cannot be loaded or warmed up is logged in full and
    replaced by the simulator, with the reason kept redacted; a bad setting (`SettingsError`,
    e.g. a CUDA device that is not there) is raised in every mode, never papered over.
    """
    started = time.perf_counter()
    if mode != AUTO_MODE:
        backend = create_backend(mode, settings)
        warm_up(backend)
        return LoadedBackend(backend, None, time.perf_counter() - started)
    try:
        backend = create_backend(AUTO_PRIMARY, settings)
        warm_up(backend)
        reason = None
    except SettingsError:
        raise
    except Exception as error:
        detail = mask_secrets(f"{type(error).__name__}: {error}", [settings.hf_token])
        logger.warning(
            "auto mode: the %s backend could not be loaded (%s); serving %s",
            AUTO_PRIMARY,
            detail,
            AUTO_FALLBACK,
        )
        reason = redact_detail(detail)
        backend = create_backend(AUTO_FALLBACK, settings)
        warm_up(backend)
    return LoadedBackend(backend, reason, time.perf_counter() - started)
