"""Backpressure: a bounded number of predictions in flight per worker; the excess is refused.

A prediction request takes a slot from a non-blocking semaphore before its view runs and gives it
back when the request is torn down, or, if a forecast of the request still runs in a helper thread
(see :mod:`app.time_budget`), when that thread finishes. A request that finds no free slot gets
429 problem+json with ``Retry-After`` immediately instead of waiting in an unbounded queue.
Only predictions (``POST /predict*``) are limited: health probes, ``/metrics``, ``/models`` and
the OpenAPI document are never refused.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask, Response, g, request
from prometheus_client import Gauge

from app.errors import problem
from app.metrics import get_metrics

logger = logging.getLogger(__name__)

EXTENSION_KEY = "kronos.backpressure"
LIMITED_PATH_PREFIX = "/predict"


class InflightSlot:
    """One taken slot of an :class:`InflightLimiter`, returned when its last holder lets go.

    The request holds it from the start; a helper thread running the request's forecast takes
    its own hold (:meth:`hold`), so work that outlives its request keeps the slot taken.
    """

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
    """At most ``capacity`` predictions at once in this worker process.

    ``gauge``, when given, follows the number of slots taken.
    """

    def __init__(self, capacity: int, retry_after_s: int, gauge: Gauge | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"in-flight capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.retry_after_s = retry_after_s
        self._semaphore = threading.BoundedSemaphore(capacity)
        self._gauge = gauge

    def try_take(self) -> InflightSlot | None:
        """A slot if one is free right now, else ``None`` (never blocks)."""
        if not self._semaphore.acquire(blocking=False):
            return None
        if self._gauge is not None:
            self._gauge.inc()
        return InflightSlot(self)

    def give_back(self) -> None:
        """Return one slot (called by :meth:`InflightSlot.release`)."""
        if self._gauge is not None:
            self._gauge.dec()
        self._semaphore.release()


def current_slot() -> InflightSlot | None:
    """The slot the current request holds, or ``None`` when it is not a limited request."""
    slot: InflightSlot | None = g.get("inflight_slot")
    return slot


def _take_slot_or_refuse(limiter: InflightLimiter) -> Response | None:
    if request.method != "POST" or not request.path.startswith(LIMITED_PATH_PREFIX):
        return None
    slot = limiter.try_take()
    if slot is None:
        get_metrics().rejected.labels(reason="overloaded").inc()
        logger.warning("refused a prediction: %d already in flight", limiter.capacity)
        return problem(
            429,
            "Too many requests",
            f"This worker is already running its limit of {limiter.capacity} predictions; "
            f"retry after {limiter.retry_after_s} s.",
            headers={"Retry-After": str(limiter.retry_after_s)},
        )
    g.inflight_slot = slot
    return None


def _release_request_hold(_exc: BaseException | None) -> None:
    slot = current_slot()
    if slot is not None:
        slot.release()


def init_app(app: Flask, max_inflight: int, retry_after_s: int = 1) -> InflightLimiter:
    """Limit ``/predict*`` requests to ``max_inflight`` at once in this worker.

    Needs :mod:`app.metrics` initialised first (the in-flight gauge and the rejection counter).
    """
    limiter = InflightLimiter(max_inflight, retry_after_s, gauge=get_metrics(app).inflight)
    app.extensions[EXTENSION_KEY] = limiter
    app.before_request(lambda: _take_slot_or_refuse(limiter))
    app.teardown_request(_release_request_hold)
    return limiter
