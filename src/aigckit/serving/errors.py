"""Errors as HTTP answers: OpenAI's shape {"error": {"message", "type", "code"}}, one line, never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import AigcError

__all__ = ["APIError", "ERRORS", "ErrorBody", "error_body", "install_error_handlers"]

log = logging.getLogger("aigckit.serving")


class ErrorDetail(BaseModel):
    """What went wrong, in one line."""

    message: str
    type: str
    code: int


class ErrorBody(BaseModel):
    """Every answer other than 2xx (OpenAI's shape)."""

    error: ErrorDetail


_ERROR = {"model": ErrorBody}
ERRORS = {  # documented on every route behind the key; "default": any other error a route may give
    401: {**_ERROR, "description": "no valid API key (header 'Authorization: Bearer <key>')"},
    429: {**_ERROR, "description": "the key's rate or concurrency limit, or a full queue; see Retry-After"},
    "default": {**_ERROR, "description": "an error: 404 unknown model/job/file, 413/422 a request beyond the "
                                         "limits or invalid, 409 cancelled, 500 internal, 503 stopping, 504 timeout"},
}


class APIError(Exception):
    """An answer other than 2xx: status, one-line message, OpenAI error type, optional headers."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers or {}


def error_body(status: int, message: str, kind: str) -> dict:
    """The JSON body of an error answer."""
    return {"error": {"message": message, "type": kind, "code": status}}


def _validation_message(error: RequestValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
    return f"{where}: {first.get('msg', 'invalid value')}" if where else first.get("msg", "invalid request")


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves the app as error_body JSON."""

    @app.exception_handler(APIError)
    async def api_error(request: Request, error: APIError) -> JSONResponse:
        return JSONResponse(error_body(error.status, error.message, error.kind), error.status, headers=error.headers)

    @app.exception_handler(AigcError)
    async def user_error(request: Request, error: AigcError) -> JSONResponse:
        return JSONResponse(error_body(422, str(error), "invalid_request_error"), 422)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(422, _validation_message(error), "invalid_request_error"), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(error.status_code, str(error.detail), kind), error.status_code,
                            headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def crash(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, "internal server error; the server log has the details", "server_error"),
                            500)
