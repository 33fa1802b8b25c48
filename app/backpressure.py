"""Backpressure: a bounded number of forecasting requests in flight per worker; the excess is
refused at once.

A view marked `policy.runs_forecasts` holds a slot of this worker's `InflightLimiter` while it
runs (taken after its body was read and validated). A forecast the request runs in a helper thread
(see `app.time_budget`) takes its own hold, so work that outlives its request (a 504) keeps the
slot until it ends. A request that finds no free slot gets 429 problem+json with `Retry-After`
immediately instead of waiting in an unbounded queue. The slots cover forecasts running and those
queued for the worker's `ForecastGate` (`KRONOS_CONCURRENT_FORECASTS` run at once; the rest of
`KRONOS_MAX_INFLIGHT` wait for a turn, briefly).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app
from prometheus_client import Gauge

from app import context
from app.errors import RETRY_AFTER_S, ProblemError
from app.metrics import get_metrics
from app.policy import policy_of_request

logger = logging.getLogger(__name__)

EXTENSION_KEY = "kronos.backpressure"


class InflightSlot:
    """One taken slot of an `InflightLimiter`, returned when its last holder lets go."""

    def __init__(self, limiter: InflightLimiter) -> None:
        self._limiter = limiter
        self._lock = threading.Lock()
        self._holders = 1

    def hold(self) -> None:
        """One more holder."""
        with self._lock:
            self._holders += 1

    def release(self) -> None:
        """One holder fewer; the last one gives the slot back to the limiter."""
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last:
            self._limiter.give_back()


class InflightLimiter:
    """At most `capacity` forecasting requests at once in this worker process.

    `gauge`, when given, follows the number of slots taken. Each refusal is answered after
    `refusal_delay_s` (see `refuse`).
    """

    def __init__(
        self,
        capacity: int,
        retry_after_s: int,
        gauge: Gauge | None = None,
        refusal_delay_s: float = 0.0,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"in-flight capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.retry_after_s = retry_after_s
        self.refusal_delay_s = refusal_delay_s
        self._lock = threading.Lock()
        self._taken = 0
        self._gauge = gauge

    @property
    def full(self) -> bool:
        """Every slot is taken right now."""
        with self._lock:
            return self._taken >= self.capacity

    def try_take(self) -> InflightSlot | None:
        """A slot if one is free right now, else None (never blocks)."""
        with self._lock:
            if self._taken >= self.capacity:
                return None
            self._taken += 1
        if self._gauge is not None:
            self._gauge.inc()
        return InflightSlot(self)

    def give_back(self) -> None:
        """Return one slot (called by `InflightSlot.release`)."""
        if self._gauge is not None:
            self._gauge.dec()
        with self._lock:
            self._taken -= 1

    def refuse(self) -> ProblemError:
        """The 429 for a request that found every slot taken, counted, logged and paced: it is
        handed back `refusal_delay_s` later. A request thread that refuses works in Python, and
        every such thread takes an equal share of the GIL from the forecast running in the same
        worker (4 threads answering back to back made a 0.42 s forecast take 2.2 s): clients
        that retry at once without waiting `Retry-After` would otherwise starve the very work
        they wait for. Sleeping holds no GIL and no core."""
        get_metrics().rejected.labels(reason="overloaded").inc()
        logger.warning("refused a prediction: %d already in flight", self.capacity)
        if self.refusal_delay_s > 0:
            time.sleep(self.refusal_delay_s)
        return ProblemError(
            429,
            "Too many requests",
            f"This worker already holds its limit of {self.capacity} predictions (running or "
            "waiting for their turn); "
            f"retry after {self.retry_after_s} s.",
            headers={"Retry-After": str(self.retry_after_s)},
        )


def refuse_when_full() -> None:
    """Before-request hook: a forecasting request that arrives while every slot is taken is
    refused before its body is read, parsed and validated (it would be refused after, at a
    higher cost: under overload, refusals are most of the traffic). One that gets past this may
    still find no slot once validated (`hold_inflight_slot`)."""
    if not policy_of_request().runs_forecasts:
        return
    limiter: InflightLimiter = current_app.extensions[EXTENSION_KEY]
    if limiter.full:
        raise limiter.refuse()  # answered by the ProblemError handler like every refusal


@contextmanager
def hold_inflight_slot() -> Iterator[InflightSlot]:
    """Hold a slot of this worker's limiter for the block, or raise a 429 `ProblemError`."""
    limiter: InflightLimiter = current_app.extensions[EXTENSION_KEY]
    slot = limiter.try_take()
    if slot is None:
        raise limiter.refuse()
    request_context = context.current()
    if request_context is not None:
        request_context.slot = slot
    try:
        yield slot
    finally:
        if request_context is not None:
            request_context.slot = None
        slot.release()


def current_slot() -> InflightSlot | None:
    """The slot the current request holds, or None."""
    request_context = context.current()
    return request_context.slot if request_context else None


def init_app(
    app: Flask,
    max_inflight: int,
    retry_after_s: int = RETRY_AFTER_S,
    refusal_delay_s: float = 0.0,
) -> InflightLimiter:
    """Give `app` a limiter of `max_inflight` slots (needs `app.metrics` initialised first)."""
    limiter = InflightLimiter(
        max_inflight, retry_after_s, get_metrics(app).inflight, refusal_delay_s
    )
    app.extensions[EXTENSION_KEY] = limiter
    return limiter
