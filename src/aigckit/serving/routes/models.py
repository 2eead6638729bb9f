"""GET /v1/models: the served models, OpenAI's list plus what each family takes."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import StateDep
from ..errors import APIError

router = APIRouter()


def _model(served) -> dict:
    return {"id": served.id, "object": "model", "created": served.created, "owned_by": "aigckit",
            "aigckit": served.describe()}


@router.get("/v1/models")
def list_models(state: StateDep) -> dict:
    """Every served model."""
    return {"object": "list", "data": [_model(served) for served in state.catalog]}


@router.get("/v1/models/{model_id}")
def get_model(model_id: str, state: StateDep) -> dict:
    """One served model."""
    try:
        return _model(state.catalog.get(model_id))
    except KeyError as error:
        raise APIError(404, error.args[0], "not_found_error") from None
