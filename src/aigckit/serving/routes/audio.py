"""POST /v1/audio/speech (OpenAI's shape): the answer's body is the audio file."""

from __future__ import annotations

import base64
import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...audio.io import AUDIO_FORMATS
from ..deps import StateDep
from ..security import KeyName
from ..schemas import SpeechRequest
from ..submit import await_job, preload, submit_speech

router = APIRouter()


@router.post("/v1/audio/speech", response_class=Response,
             responses={200: {"content": {media: {} for _, _, media in AUDIO_FORMATS.values()},
                              "description": "the spoken digits"}})
async def create_speech(body: SpeechRequest, request: Request, state: StateDep, key: KeyName) -> Response:
    """The digits of `input` spoken by a model trained on spoken digits; what made it in the X-Aigckit header."""
    await preload(state, body.model)
    result = await await_job(request, submit_speech(state, body, key))  # job results are JSON: the audio as base64
    return Response(base64.b64decode(result["audio_b64"]), media_type=result["media_type"],
                    headers={"X-Aigckit": json.dumps(result["aigckit"], separators=(",", ":"))})
