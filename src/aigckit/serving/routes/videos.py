"""OpenAI's Videos API: POST /v1/videos queues a clip of chosen digits from a video diffusion run and answers at once
with the video object; GET /v1/videos/{id} polls it, GET /v1/videos/{id}/content downloads the MP4."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import FileResponse

from ..deps import StateDep, read_upload
from ..errors import APIError
from ..jobs import Job
from ..schemas import VideoRequest
from ..security import KeyName
from ..state import ServerState
from ..submit import preload, submit_video
from ..video_jobs import video_object

router = APIRouter()
POLL_AFTER_MS = "250"  # how long the openai client's poll helper waits between GETs (its own default is 1 s)


def _video(state: ServerState, video_id: str, key: str | None) -> Job:
    """The video's job, seen only by the key that made it and by admin keys (for others it does not exist)."""
    job = state.jobs.get(video_id)
    if job is None or job.type != "videos" or not state.may_see(key, job.key_name):
        raise APIError(404, f"no video {video_id} on this server (finished videos are kept for a while, then "
                            f"forgotten)", "not_found_error")
    return job


def _form_fields(request: Request) -> None:
    """A JSON body would read as a form without fields: say what to send instead."""
    if request.headers.get("content-type", "").startswith("application/json"):
        raise APIError(415, "POST /v1/videos takes form fields, as OpenAI's does: send multipart/form-data "
                            "(curl -F model=... -F prompt=...)")


# /v1/videos/generations: the same route under the name of the images' one; the schema says multipart (the
# input_reference file), and url-encoded fields are read too
@router.post("/v1/videos", dependencies=[Depends(_form_fields)])
@router.post("/v1/videos/generations", dependencies=[Depends(_form_fields)])
async def create_video(body: Annotated[VideoRequest, Form(media_type="multipart/form-data")], state: StateDep,
                       key: KeyName, response: Response) -> dict:
    """Queue a clip of the digits in `prompt` (as many as the model's clips show), or continuing the image
    `input_reference` (a prediction model); the answer is the video object, at once: poll GET /v1/videos/{id} (or
    stream GET /v1/jobs/{id}/events), then GET /v1/videos/{id}/content."""
    await preload(state, body.model)
    first_frame = None
    if body.input_reference is not None:
        first_frame = await read_upload(body.input_reference, "input_reference", state.settings.limits.max_upload_bytes)
    job = submit_video(state, body, key, first_frame)
    response.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return video_object(job)


@router.get("/v1/videos")
async def list_videos(state: StateDep, key: KeyName, after: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=100)] = 20,
                      order: Literal["asc", "desc"] = "desc") -> dict:
    """The videos the server still remembers, newest first (order=asc: oldest first), `limit` after `after`."""
    jobs = [job for job in state.jobs.jobs.values() if job.type == "videos" and state.may_see(key, job.key_name)]
    if order == "desc":
        jobs.reverse()
    if after is not None:
        ids = [job.id for job in jobs]
        if after not in ids:
            raise APIError(404, f"no video {after} on this server to list after (give the last_id of a page)",
                           "not_found_error")
        jobs = jobs[ids.index(after) + 1:]
    page = jobs[:limit]
    return {"object": "list", "data": [video_object(job) for job in page],
            "first_id": page[0].id if page else None, "last_id": page[-1].id if page else None,
            "has_more": len(jobs) > limit}


@router.get("/v1/videos/{video_id}")
async def get_video(video_id: str, state: StateDep, key: KeyName, response: Response) -> dict:
    """The video object: status queued / in_progress / completed / failed, progress in percent, error if failed."""
    job = _video(state, video_id, key)
    if not job.terminal:
        response.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return video_object(job)


@router.get("/v1/videos/{video_id}/content", response_class=Response,
            responses={200: {"content": {"video/mp4": {}, "image/png": {}},
                             "description": "the clip (variant=video) or its first frame (variant=thumbnail)"}})
async def video_content(video_id: str, state: StateDep, key: KeyName,
                        variant: Literal["video", "thumbnail"] = "video") -> Response:
    """The clip as an H.264 MP4 at the model's frame size and 10 fps, or its first frame as a PNG."""
    job = _video(state, video_id, key)
    if job.status != "done":
        raise APIError(409, f"video {video_id} is {video_object(job)['status']}; its content can be downloaded once "
                            f"its status is completed", "conflict_error")
    made = job.result["aigckit"]
    if variant == "thumbnail":
        return FileResponse(state.images.path(made["thumbnail_sha256"]), media_type="image/png")
    return FileResponse(state.videos.path(made["sha256"]), media_type="video/mp4")
