"""Jobs for long work: POST /v1/jobs answers 202 at once; poll, stream progress, or cancel."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from ..deps import StateDep
from ..errors import APIError
from ..jobs import Job
from ..schemas import JobRequest
from ..security import KeyName
from ..submit import decode_upload, prepare_edit, preload, submit_edit, submit_images, submit_text
from .completions import SSE_EVENT

router = APIRouter()

def _job(state, job_id: str, key: str | None) -> Job:
    """The job, seen only by the key that made it and by admin keys (for others it does not exist)."""
    job = state.jobs.get(job_id)
    if job is None or not state.may_see(key, job.key_name):
        raise APIError(404, f"no job {job_id} on this server (finished jobs are kept for a while, then forgotten)",
                       "not_found_error")
    return job


@router.post("/v1/jobs", status_code=202)
async def create_job(body: JobRequest, state: StateDep, key: KeyName) -> JSONResponse:
    """Queue any generation and answer with its id before any work is done."""
    request = body.request
    await preload(state, request.model)
    if body.type == "images.generations":
        job = submit_images(state, request, key)
    elif body.type == "images.edits":
        limit = state.settings.limits.max_upload_bytes
        work = await prepare_edit(state, request, lambda: decode_upload(request.image, "image", limit),
                                  lambda: decode_upload(request.mask, "mask", limit))
        job = submit_edit(state, request.model, work, key)
    else:
        job = submit_text(state, request, key)
    return JSONResponse(job.to_dict(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get("/v1/jobs/{job_id}")
async def get_job(job_id: str, state: StateDep, key: KeyName) -> dict:
    """The job's state, queue position, progress and (when done) result."""
    return _job(state, job_id, key).to_dict()


@router.delete("/v1/jobs/{job_id}")
async def cancel_job(job_id: str, state: StateDep, key: KeyName) -> dict:
    """Cancel a queued or running job (a diffusion job stops within one sampler step); 409 if it already ended."""
    job = _job(state, job_id, key)
    if not job.cancel():
        raise APIError(409, f"job {job_id} already ended ({job.status}); nothing to cancel", "conflict_error")
    return job.to_dict()


async def _events(job: Job) -> AsyncIterator[str]:
    events = job.subscribe()
    try:
        while (event := await events.get()) is not None:
            kind, data = event
            yield f"event: {kind}\ndata: {json.dumps(data)}\n\n"
    finally:
        job.unsubscribe(events)


@router.get("/v1/jobs/{job_id}/events", responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}},
                                                         "description": "status, progress and text events"}})
async def job_events(job_id: str, state: StateDep, key: KeyName) -> StreamingResponse:
    """Server-sent events: status, progress (step/total), text pieces; the stream ends when the job does."""
    return StreamingResponse(_events(_job(state, job_id, key)), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})
