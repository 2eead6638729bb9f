"""Dependencies of the routes: the server's state and the caller's API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .state import ServerState

__all__ = ["StateDep", "get_state"]


def get_state(request: Request) -> ServerState:
    """The running server's state."""
    return request.app.state.aigckit


StateDep = Annotated[ServerState, Depends(get_state)]
