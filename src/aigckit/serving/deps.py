"""Dependencies of the routes: the server's state and the caller's API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, UploadFile

from .errors import APIError
from .state import ServerState

__all__ = ["StateDep", "get_state", "read_upload"]


def get_state(request: Request) -> ServerState:
    """The running server's state."""
    return request.app.state.aigckit


StateDep = Annotated[ServerState, Depends(get_state)]


async def read_upload(upload: UploadFile, what: str, limit: int) -> bytes:
    """An uploaded file's bytes; 413 when it is larger than `limit`."""
    raw = await upload.read(limit + 1)
    if len(raw) > limit:
        raise APIError(413, f"the {what} is larger than this server's limit of {limit} bytes")
    return raw
