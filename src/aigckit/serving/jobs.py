"""Jobs: every generation the server runs, whether a client waits for it, streams it or polls it.

A job lives on the event loop; engines work on it from their threads through the thread-side methods (set_running,
progress, emit_text, finish, fail), which hand each change to the loop. Clients read it, subscribe to its events
and cancel it from the loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Job", "JobManager", "TextChoice", "TERMINAL", "QueueFull", "Engine"]

TERMINAL = frozenset({"done", "failed", "cancelled"})


class QueueFull(Exception):
    """A model's queue is full; the client should retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Engine(Protocol):
    """What runs jobs of one model (an image batcher, a text decoding loop)."""

    def submit(self, job: Job) -> None: ...
    def withdraw(self, job: Job) -> None: ...
    def position(self, job: Job) -> int | None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


class Job:
    """One request's work: state, progress, result, and the events clients listen to."""

    def __init__(self, type: str, model_id: str, params: Any, *, loop: asyncio.AbstractEventLoop,
                 key_name: str | None = None, record: dict | None = None) -> None:
        self.id = f"job-{time.time_ns():x}-{uuid.uuid4().hex[:8]}"  # sorts by creation time
        self.type, self.model_id, self.params, self.key_name = type, model_id, params, key_name
        self.record = record or {}  # the request as the history stores it (JSON)
        self.status = "queued"
        self.step, self.total = 0, 0
        self.created, self.started, self.finished = time.time(), None, None
        self.result: dict | None = None
        self.error: dict | None = None
        self.cancelled = threading.Event()  # engines check it between steps and stop
        self.work_steps = 0  # steps the engine ran for this job, counted in its thread, also after a cancel
        self.engine: Engine | None = None
        self.on_terminal: list[Callable[[Job], None]] = []
        self.choices: dict[int, dict] = {}  # text jobs: finished choices by index
        self.compose: Callable[[Job], dict] | None = None  # text jobs: choices -> the response body
        self.num_choices = 1
        self._loop = loop
        self._done = asyncio.Event()
        self._listeners: set[asyncio.Queue] = set()

    # ---------------------------------------------------------------- thread side (engines)
    def set_running(self) -> None:
        """The engine started this job."""
        self._call(self._apply_running)

    def progress(self, step: int, total: int) -> None:
        """The engine finished `step` of `total` steps."""
        self.work_steps += 1
        self._call(self._apply_progress, step, total)

    def emit_text(self, piece: str, index: int = 0) -> None:
        """A new piece of text of choice `index`."""
        self._call(self._publish, "text", {"index": index, "text": piece})

    def finish(self, result: dict) -> None:
        """The job is done; `result` is the response body."""
        self._call(self._end, "done", result, None)

    def fail(self, message: str, kind: str = "server_error", code: int = 500) -> None:
        """The job failed with a one-line message."""
        self._call(self._end, "failed", None, {"message": message, "type": kind, "code": code})

    def choice_done(self, index: int, result: dict) -> None:
        """Choice `index` of a text job finished; the job finishes with its last choice."""
        self._call(self._apply_choice, index, result)

    def _call(self, function: Callable, *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop closed: the server is shutting down
            pass

    # ---------------------------------------------------------------- loop side
    @property
    def terminal(self) -> bool:
        """Whether the job is done, failed or cancelled."""
        return self.status in TERMINAL

    def cancel(self, reason: str | None = None) -> bool:
        """Stop the job (queued or running); False when it had already ended."""
        if self.terminal:
            return False
        self.cancelled.set()
        if self.status == "queued" and self.engine is not None:
            self.engine.withdraw(self)
        if reason is None:
            self._end("cancelled", None, None)
        else:  # the time limit
            self._end("failed", None, {"message": reason, "type": "timeout_error", "code": 504})
        return True

    async def wait(self) -> None:
        """Until the job ends."""
        await self._done.wait()

    def subscribe(self) -> asyncio.Queue:
        """A queue of (event, data) pairs, ending with None after the job ends."""
        queue: asyncio.Queue = asyncio.Queue()
        queue.put_nowait(("status", self.to_dict()))
        if self.terminal:
            queue.put_nowait(None)
        else:
            self._listeners.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        """Stop sending events to `queue`."""
        self._listeners.discard(queue)

    def to_dict(self) -> dict[str, Any]:
        """The job as GET /v1/jobs/{id} answers it."""
        position = self.engine.position(self) if self.status == "queued" and self.engine is not None else None
        return {"id": self.id, "object": "job", "type": self.type, "model": self.model_id, "status": self.status,
                "queue_position": position, "progress": {"step": self.step, "total": self.total},
                "created": self.created, "started": self.started, "finished": self.finished,
                "result": self.result, "error": self.error}

    def _publish(self, event: str, data: Any) -> None:
        for queue in self._listeners:
            queue.put_nowait((event, data))

    def _apply_running(self) -> None:
        if self.status == "queued":
            self.status, self.started = "running", time.time()
            self._publish("status", self.to_dict())

    def _apply_progress(self, step: int, total: int) -> None:
        if not self.terminal:
            self.step, self.total = step, total
            self._publish("progress", {"step": step, "total": total})

    def _apply_choice(self, index: int, result: dict) -> None:
        if self.terminal:
            return
        self.choices[index] = result
        if len(self.choices) == self.num_choices:
            self._end("done", self.compose(self) if self.compose else result, None)

    def _end(self, status: str, result: dict | None, error: dict | None) -> None:
        if self.terminal:
            return  # a job ends once: an engine's late finish after a cancel changes nothing
        self.status, self.result, self.error, self.finished = status, result, error, time.time()
        if self.started is None and status == "done":
            self.started = self.finished
        self._publish("status", self.to_dict())
        for queue in self._listeners:
            queue.put_nowait(None)
        self._listeners.clear()
        self._done.set()
        for callback in self.on_terminal:
            callback(self)


class TextChoice:
    """The sink a text engine writes one choice of a job into (n choices: n sinks of one job)."""

    def __init__(self, job: Job, index: int) -> None:
        self.job, self.index = job, index
        self.cancelled = job.cancelled

    def set_running(self) -> None:
        """The engine admitted this choice."""
        self.job.set_running()

    def emit_text(self, piece: str) -> None:
        """A new piece of this choice's text."""
        self.job.work_steps += 1
        self.job.emit_text(piece, self.index)

    def finish(self, result: dict) -> None:
        """This choice is complete."""
        self.job.choice_done(self.index, result)

    def fail(self, message: str) -> None:
        """This choice failed: the whole job fails."""
        self.job.fail(message)


class JobManager:
    """Every job by id (the newest `keep` ended ones are remembered), with the time limit applied."""

    def __init__(self, *, timeout_s: float, keep: int = 1000) -> None:
        self.timeout_s, self.keep = timeout_s, keep
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.on_terminal: list[Callable[[Job], None]] = []

    def create(self, type: str, model_id: str, params: Any, *, key_name: str | None = None,
               record: dict | None = None) -> Job:
        """A new queued job, registered and timed; `record`: the request as JSON, for the history."""
        loop = asyncio.get_running_loop()
        job = Job(type, model_id, params, loop=loop, key_name=key_name, record=record)
        job.on_terminal.extend(self.on_terminal)
        self.jobs[job.id] = job
        handle = loop.call_later(self.timeout_s, job.cancel, f"the request ran past the server's time limit of "
                                                              f"{self.timeout_s:g} s")
        job.on_terminal.append(lambda _: handle.cancel())
        self._forget_old()
        return job

    def get(self, job_id: str) -> Job | None:
        """The job called `job_id`, or None."""
        return self.jobs.get(job_id)

    def active(self) -> list[Job]:
        """Jobs not yet ended."""
        return [job for job in self.jobs.values() if not job.terminal]

    def cancel_all(self, reason: str = "the server is shutting down") -> None:
        """Cancel every job that has not ended (graceful shutdown)."""
        for job in self.active():
            job.cancelled.set()
            job._end("cancelled", None, {"message": reason, "type": "server_shutdown", "code": 503})

    def _forget_old(self) -> None:
        ended = [job_id for job_id, job in self.jobs.items() if job.terminal]
        for job_id in ended[:max(0, len(ended) - self.keep)]:
            del self.jobs[job_id]
