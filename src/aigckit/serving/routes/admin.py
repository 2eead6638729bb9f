"""GET /v1/usage (admin keys only) and the API's own description (/openapi.json, /docs, /redoc), behind the key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

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


@router.get("/docs", include_in_schema=False)
def swagger(request: Request, key: KeyName) -> HTMLResponse:
    """Swagger UI (it loads its scripts from a CDN and reads /openapi.json without a key: with keys set, read the
    schema with a client that sends the key instead)."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title} - Swagger UI")


@router.get("/redoc", include_in_schema=False)
def redoc(request: Request, key: KeyName) -> HTMLResponse:
    """ReDoc (the same caveats as /docs)."""
    return get_redoc_html(openapi_url="/openapi.json", title=f"{request.app.title} - ReDoc")
