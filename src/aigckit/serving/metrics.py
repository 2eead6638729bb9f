"""Prometheus metrics of one app (its own CollectorRegistry, so several apps in one process do not mix)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ServerMetrics"]


class ServerMetrics:
    """Requests, latency, queue depth, batch sizes, tokens and images produced."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("aigckit_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("aigckit_request_seconds", "Time to answer an HTTP request", ["route"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
                                 registry=self.registry)
        self.queue_depth = Gauge("aigckit_queue_depth", "Jobs waiting per model", ["model"], registry=self.registry)
        self.batch_rows = Histogram("aigckit_batch_rows", "Images or sequences per engine batch",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry)
        self.tokens = Counter("aigckit_tokens", "Tokens generated", ["model"], registry=self.registry)
        self.images = Counter("aigckit_images", "Images generated", ["model"], registry=self.registry)
        self.jobs = Counter("aigckit_jobs", "Jobs ended, by status", ["model", "type", "status"],
                            registry=self.registry)

    def batch(self, jobs: int, rows: int) -> None:
        """An engine ran a batch of `rows` rows."""
        self.batch_rows.observe(rows)

    def job_ended(self, job: Any) -> None:
        """Count a finished job and what it produced."""
        self.jobs.labels(job.model_id, job.type, job.status).inc()
        if job.status != "done" or job.result is None:
            return
        if "usage" in job.result:
            self.tokens.labels(job.model_id).inc(job.result["usage"]["completion_tokens"])
        else:
            self.images.labels(job.model_id).inc(len(job.result.get("data", [])))

    def render(self, state: Any) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, queue depths read now."""
        for model_id, engine in state.engines.items():
            self.queue_depth.labels(model_id).set(engine.queue_depth)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
