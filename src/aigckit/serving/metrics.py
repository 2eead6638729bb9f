"""Prometheus metrics of one app (its own CollectorRegistry, so several apps in one process do not mix) and the
access log."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ServerMetrics", "RequestObserver"]

access_log = logging.getLogger("aigckit.serving.access")

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
ROWS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServerMetrics:
    """Requests, latency, queue depth, batch sizes, job times, tokens and images produced."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("aigckit_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=r)
        self.latency = Histogram("aigckit_request_seconds", "Time from a request to the end of its response (a "
                                 "stream's included)", ["route"], buckets=SECONDS, registry=r)
        self.in_flight = Gauge("aigckit_requests_in_flight", "HTTP requests being answered", registry=r)
        self.queue_depth = Gauge("aigckit_queue_depth", "Jobs waiting per model", ["model"], registry=r)
        self.batch_rows = Histogram("aigckit_batch_rows", "Images or sequences per engine batch (per decoding step "
                                    "for text)", ["model"], buckets=ROWS, registry=r)
        self.batch_jobs = Histogram("aigckit_batch_requests", "Requests sharing one engine batch", ["model"],
                                    buckets=ROWS, registry=r)
        self.tokens = Counter("aigckit_tokens", "Tokens generated (finished text jobs)", ["model"], registry=r)
        self.images = Counter("aigckit_images", "Images generated (finished image jobs)", ["model"], registry=r)
        self.guard_withheld = Counter("aigckit_guard_withheld", "Images the memorisation guard withheld (near-copies "
                                      "of training images)", ["model"], registry=r)
        self.jobs = Counter("aigckit_jobs", "Jobs ended, by status", ["model", "type", "status"], registry=r)
        self.queued_seconds = Histogram("aigckit_job_queued_seconds", "Time a job waited before it ran", ["model"],
                                        buckets=SECONDS, registry=r)
        self.run_seconds = Histogram("aigckit_job_run_seconds", "Time a job ran, to its end", ["model", "type"],
                                     buckets=SECONDS, registry=r)

    def batch_observer(self, model_id: str) -> Callable[[int, int], None]:
        """The on_batch callback of an engine of `model_id`: (requests, rows) of every batch it runs."""

        def observe(jobs: int, rows: int) -> None:
            self.batch_jobs.labels(model_id).observe(jobs)
            self.batch_rows.labels(model_id).observe(rows)

        return observe

    def job_ended(self, job: Any) -> None:
        """Count an ended job, its times and what it produced."""
        self.jobs.labels(job.model_id, job.type, job.status).inc()
        if job.started is not None:
            self.queued_seconds.labels(job.model_id).observe(max(0.0, job.started - job.created))
            self.run_seconds.labels(job.model_id, job.type).observe(max(0.0, job.finished - job.started))
        if job.status != "done" or job.result is None:
            return
        if "usage" in job.result:
            self.tokens.labels(job.model_id).inc(job.result["usage"]["completion_tokens"])
        else:
            self.images.labels(job.model_id).inc(len(job.result.get("data", [])))
            if "aigckit_guard" in job.result:
                self.guard_withheld.labels(job.model_id).inc(job.result["aigckit_guard"]["withheld"])

    def render(self, state: Any) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, queue depths read now."""
        for model_id, engine in list(state.engines.items()):
            self.queue_depth.labels(model_id).set(engine.queue_depth)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestObserver:
    """ASGI middleware: counts and times every HTTP request to the end of its response (a stream's last byte), and
    writes one JSON line per request on the logger `aigckit.serving.access`: method, path, status, ms, key (the key's
    name, never the key)."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]  # what the client gets when the app raises before answering

        async def observed_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, observed_send)
        finally:
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            route = _route_label(scope)
            self.metrics.requests.labels(scope["method"], route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(seconds)
            access_log.info(json.dumps({"method": scope["method"], "path": scope["path"], "status": status[0],
                                        "ms": round(1000 * seconds, 1),
                                        "key": (scope.get("state") or {}).get("key_name")}))


def _route_label(scope: dict) -> str:
    """The route's template (/v1/jobs/{job_id}), so that ids do not make a metric per request."""
    route = scope.get("route")
    if route is None:
        return "unmatched"
    path = getattr(route, "path", None)
    return path if path else "/ (page)"
