"""One worker thread per model that batches the jobs waiting for it.

Jobs that arrive within a short window and share a batch key (for images: the sampler, its steps, guidance and eta)
run as one batch, up to a number of rows (images); a job with no key runs alone. The queue is bounded: beyond it,
submit raises QueueFull and the client gets 429 with Retry-After.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable

from ..errors import AigcError
from .jobs import Job, QueueFull

__all__ = ["BatchingEngine", "Stopped"]

log = logging.getLogger("aigckit.serving")


class Stopped(Exception):
    """Raised inside a batch (from a progress callback) when every job in it was cancelled."""


class BatchingEngine:
    """Runs `run_batch(jobs)` in its own thread on groups of queued jobs with the same `key(job)`."""

    def __init__(self, name: str, run_batch: Callable[[list[Job]], None], *, key: Callable[[Job], Hashable | None],
                 rows: Callable[[Job], int], max_rows: int, max_queue: int, window_s: float,
                 on_batch: Callable[[int, int], None] | None = None) -> None:
        self.name, self.run_batch, self.key, self.rows = name, run_batch, key, rows
        self.max_rows, self.max_queue, self.window_s = max_rows, max_queue, window_s
        self.on_batch = on_batch  # (jobs, rows) of every batch run, for metrics
        self.queue: deque[Job] = deque()
        self.running: list[Job] = []
        self._last_jobs = 0  # jobs in the previous batch
        self._condition = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=f"engine-{name}", daemon=True)

    @property
    def queue_depth(self) -> int:
        """Jobs waiting."""
        with self._condition:
            return len(self.queue)

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the running batch (its jobs may be cancelled first) and end the thread."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, job: Job) -> None:
        """Queue `job`; QueueFull when max_queue jobs already wait."""
        with self._condition:
            if len(self.queue) >= self.max_queue:
                raise QueueFull(f"model {self.name} has {len(self.queue)} requests waiting, its limit; retry shortly")
            job.engine = self
            self.queue.append(job)
            self._condition.notify_all()

    def withdraw(self, job: Job) -> None:
        """Take a cancelled job out of the queue, freeing its place."""
        with self._condition:
            if job in self.queue:
                self.queue.remove(job)

    def position(self, job: Job) -> int | None:
        """0 for the next job to run, 1 for the one after, ...; None when not queued."""
        with self._condition:
            for i, queued in enumerate(self.queue):
                if queued is job:
                    return i
        return None

    def _next_batch(self) -> list[Job] | None:
        with self._condition:
            while not self._stopping and not self.queue:
                self._condition.wait()
            if self._stopping:
                return None
        if self._last_jobs > 1 or self.queue_depth > 1:
            time.sleep(self.window_s)  # requests come together: let the ones arriving now share the batch
        # (a lone client, whose batches hold one request, never waits for batch-mates that do not come)
        with self._condition:
            while self.queue and self.queue[0].cancelled.is_set():
                self.queue.popleft()
            if not self.queue:
                return []
            first = self.queue.popleft()
            batch, rows, key = [first], self.rows(first), self.key(first)
            if key is not None:
                for job in list(self.queue):
                    if job.cancelled.is_set():
                        self.queue.remove(job)
                    elif self.key(job) == key and rows + self.rows(job) <= self.max_rows:
                        self.queue.remove(job)
                        batch.append(job)
                        rows += self.rows(job)
            self.running = batch
            self._last_jobs = len(batch)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if not batch:
                continue
            for job in batch:
                job.set_running()
            if self.on_batch is not None:
                self.on_batch(len(batch), sum(self.rows(job) for job in batch))
            try:
                self.run_batch(batch)
            except Stopped:
                pass  # every job in it was cancelled and already says so
            except AigcError as error:  # the batch shares its options, so an option one job cannot use fails all
                for job in batch:
                    job.fail(str(error), "invalid_request_error", 422)
            except Exception:
                log.exception("a batch of model %s failed", self.name)
                for job in batch:
                    job.fail("the model failed on this request; the server log has the details")
            finally:
                with self._condition:
                    self.running = []
