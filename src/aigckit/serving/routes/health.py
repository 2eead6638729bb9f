"""GET /health (liveness, no key), /ready (every model loaded) and /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ..deps import StateDep
from ..security import KeyName

router = APIRouter()


@router.get("/health")
def health() -> dict[str, str]:
    """The process answers (no key needed)."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "models are still loading, or the server is stopping"}})
def ready(state: StateDep, key: KeyName) -> JSONResponse:
    """200 when every model is loaded (with --lazy: once the server has started), 503 before and while stopping."""
    models = {served.id: served.loaded for served in state.catalog}
    return JSONResponse({"ready": state.ready, "models": models}, status_code=200 if state.ready else 503)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus' text format"}})
def metrics(state: StateDep, key: KeyName) -> Response:
    """Prometheus metrics: requests, latency, queue depth, batch sizes, job times, tokens and images produced."""
    body, content_type = state.metrics.render(state)
    return Response(body, media_type=content_type)
