"""GET /v1/usage (admin keys only) and the API's own description (/openapi.json), behind the key.

No Swagger UI or ReDoc pages: FastAPI's load their scripts from a CDN, and this server works offline; any OpenAPI
viewer reads /openapi.json with the key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..security import AdminKey, KeyName, guard_of

router = APIRouter()


@router.get("/v1/usage", responses={403: {"description": "the key is not an admin key"}})
def usage(request: Request, key: AdminKey) -> dict:
    """Per key name: requests, tokens and images since the server started, requests in flight and refused, and
    the key's limits. The keys themselves are never shown."""
    return guard_of(request).report()


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, key: KeyName) -> JSONResponse:
    """The OpenAPI schema of this server."""
    return JSONResponse(request.app.openapi())
