"""Prometheus metrics for the service, correct under several gunicorn workers.

Every worker writes its samples to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` when that
variable is set before ``prometheus_client`` is imported (``gunicorn.conf.py`` sees to it);
``GET /metrics`` then merges the files of all workers, and gunicorn's ``child_exit`` hook marks
a dead worker so that live gauges forget it. Without the variable (tests,
``flask run``) the metrics live in this process only.

Each app gets its own :class:`ServiceMetrics` with its own registry, so several apps in one test
process never clash over metric names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from flask import Flask, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from app import context

EXTENSION_KEY = "kronos.metrics"
METRICS_PATH = "/metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Seconds; from a cache-hot simulated answer (ms) to a long CPU Kronos run (a minute or more).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Forecasts per shared decode (at most KRONOS_MAX_INFLIGHT), and seconds waited for one to start
# (at most KRONOS_BATCH_WINDOW_MS, 1 s).
BATCH_SIZE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64)
BATCH_WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1)


def multiprocess_dir() -> str | None:
    """The multiprocess directory if the environment names one, else ``None``."""
    return os.environ.get(MULTIPROC_ENV) or None


class ServiceMetrics:
    """The service's metric families, registered on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "kronos_http_requests_total",
            "HTTP requests answered, by route template, method and status code.",
            ["endpoint", "method", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "kronos_http_request_duration_seconds",
            "Wall time from request arrival in the worker to response, in seconds.",
            ["endpoint", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.inference_seconds = Histogram(
            "kronos_inference_duration_seconds",
            "Wall time of one forecast (all sample paths of one item), by serving mode.",
            ["mode"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.samples = Counter(
            "kronos_forecast_samples_total",
            "Sample paths generated, by serving mode.",
            ["mode"],
            registry=registry,
        )
        self.bars = Counter(
            "kronos_forecast_bars_total",
            "Future bars generated (sample paths x bars per path), by serving mode.",
            ["mode"],
            registry=registry,
        )
        self.inflight = Gauge(
            "kronos_inflight_predictions",
            "Prediction requests being worked on now, summed over live workers.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            "kronos_rejected_requests_total",
            "Requests refused or cut off: overloaded (429), queued too long (503), "
            "past the deadline (504).",
            ["reason"],
            registry=registry,
        )
        self.model_load_seconds = Gauge(
            "kronos_model_load_seconds",
            "Seconds the slowest live worker took to load model and tokenizer.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.batch_size = Histogram(
            "kronos_batch_size",
            "Forecasts decoded together in one shared decode (cross-request batching).",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_wait_seconds = Histogram(
            "kronos_batch_queue_wait_seconds",
            "Seconds a forecast waited for its shared decode to start (KRONOS_BATCH_WINDOW_MS).",
            buckets=BATCH_WAIT_BUCKETS,
            registry=registry,
        )
        self.serving_mode = Gauge(
            "kronos_serving_mode_workers",
            "Live workers serving each backend (kronos, simulated, ...).",
            ["mode"],
            registry=registry,
            multiprocess_mode="livesum",
        )

    def observe_forecast(self, mode: str, seconds: float, sample_count: int, bars: int) -> None:
        """Record one finished forecast: its wall time, its sample paths and its bars per path."""
        self.inference_seconds.labels(mode=mode).observe(seconds)
        self.samples.labels(mode=mode).inc(sample_count)
        self.bars.labels(mode=mode).inc(sample_count * bars)

    def observe_batch(self, size: int, waits_s: Sequence[float]) -> None:
        """Record one shared decode: how many forecasts it holds, how long each waited."""
        self.batch_size.observe(size)
        for wait_s in waits_s:
            self.batch_wait_seconds.observe(wait_s)

    def set_serving_mode(self, mode: str, load_seconds: float | None) -> None:
        """Record which mode this worker serves and how long its model took to load."""
        self.serving_mode.labels(mode=mode).set(1)
        if load_seconds is not None:
            self.model_load_seconds.set(load_seconds)

    def exposition(self) -> bytes:
        """The text exposition of every worker's metrics (multiprocess) or of this process."""
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=directory)
        return generate_latest(merged)


def get_metrics(app: Flask | None = None) -> ServiceMetrics:
    """The :class:`ServiceMetrics` of ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    metrics: ServiceMetrics = target.extensions[EXTENSION_KEY]
    return metrics


def _endpoint_label() -> str:
    """The route template (``/predict``), never the raw path: keeps label cardinality bounded."""
    rule = request.url_rule
    return rule.rule if rule is not None else "<unmatched>"


def _method_label() -> str:
    """The HTTP method, or ``OTHER`` for a made-up one (a client may send any token)."""
    return request.method if request.method in _KNOWN_METHODS else "OTHER"


def count_response(response: Response) -> Response:
    """After-request hook: count the response and observe its latency."""
    request_context = context.current()
    if request_context is None:
        return response
    labels = {
        "endpoint": _endpoint_label(),
        "method": _method_label(),
        "status": str(response.status_code),
    }
    metrics = get_metrics()
    metrics.requests.labels(**labels).inc()
    metrics.request_seconds.labels(**labels).observe(request_context.elapsed_s())
    return response


def _serve_metrics() -> Response:
    return Response(get_metrics().exposition(), mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> ServiceMetrics:
    """Create the app's metrics and add ``GET /metrics`` (`count_response` is installed by
    `app.hooks`)."""
    metrics = ServiceMetrics()
    app.extensions[EXTENSION_KEY] = metrics
    app.add_url_rule(METRICS_PATH, "metrics", _serve_metrics, methods=["GET"])
    return metrics
