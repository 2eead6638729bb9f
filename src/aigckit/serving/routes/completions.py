"""POST /v1/completions and /v1/chat/completions (OpenAI's shapes; `stream: true` as server-sent events)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ..deps import StateDep
from ..jobs import Job
from ..schemas import ChatCompletionRequest, CompletionRequest
from ..security import KeyName
from ..submit import await_job, preload, submit_text
from ..text_jobs import chat_chunk, completion_chunk, usage_chunk

router = APIRouter()


def sse(data: dict | str) -> str:
    """One server-sent event."""
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


async def _stream(job: Job, chat: bool, include_usage: bool) -> AsyncIterator[str]:
    """The job's text as OpenAI chunks, then the finish reasons, the usage if asked, and [DONE]. A client that goes
    away closes this generator: the job is cancelled and its rows leave the decoding batch."""
    events = job.subscribe()
    try:
        if chat:
            for index in range(job.num_choices):
                yield sse(chat_chunk(job, index, {"role": "assistant", "content": ""}, None))
        while (event := await events.get()) is not None:
            kind, data = event
            if kind == "text" and data["text"]:
                yield sse(chat_chunk(job, data["index"], {"content": data["text"]}, None) if chat
                          else completion_chunk(job, data["index"], data["text"], None))
        if job.status != "done":
            error = job.error or {"message": "the request was cancelled", "type": "cancelled", "code": 409}
            yield sse({"error": error})
            return
        for index, choice in sorted(job.choices.items()):
            yield sse(chat_chunk(job, index, {}, choice["finish_reason"]) if chat
                      else completion_chunk(job, index, "", choice["finish_reason"]))
        if include_usage:
            yield sse(usage_chunk(job, chat))
        yield sse("[DONE]")
    finally:
        job.unsubscribe(events)
        job.cancel()  # no-op when done; stops the work when the client left


async def _answer(body: CompletionRequest | ChatCompletionRequest, request: Request, state, key):
    await preload(state, body.model)
    job = submit_text(state, body, key)
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        return StreamingResponse(_stream(job, isinstance(body, ChatCompletionRequest), include_usage),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    return await await_job(request, job)


# one server-sent event (OpenAPI 3.1 has no itemSchema: tools such as schemathesis read `schema` as it)
SSE_EVENT = {"type": "object", "required": ["data"],
             "properties": {"event": {"type": "string"}, "data": {"type": "string"}}}
STREAMED = {200: {"content": {"text/event-stream": {"schema": SSE_EVENT}},
                  "description": "JSON, or with stream: true server-sent events (JSON chunks) ending in data: [DONE]"}}


@router.post("/v1/completions", responses=STREAMED)
async def completions(body: CompletionRequest, request: Request, state: StateDep, key: KeyName):
    """Continue a prompt (or each of a list of prompts) n times."""
    return await _answer(body, request, state, key)


@router.post("/v1/chat/completions", responses=STREAMED)
async def chat_completions(body: ChatCompletionRequest, request: Request, state: StateDep, key: KeyName):
    """Answer a chat; models without a chat template read the messages joined as plain text."""
    return await _answer(body, request, state, key)
