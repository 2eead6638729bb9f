"""GET /v1/history: every generation, newest first, a page at a time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ..deps import StateDep
from ..security import KeyName

router = APIRouter()


@router.get("/v1/history")
def history(state: StateDep, key: KeyName, limit: Annotated[int, Query(ge=1, le=200)] = 50,
            before: Annotated[str | None, Query(pattern=r"^[0-9a-f]{24}$")] = None, model: str | None = None) -> dict:
    """A page of the generation history, the caller's own (all of it for an admin key); `next` is the `before` of
    the following page (null at the end)."""
    records, next_cursor = state.history.page(limit=limit, before=before, model=model,
                                              key_name=state.owner_filter(key))
    return {"object": "list", "data": [record.to_dict() for record in records], "next": next_cursor}
