"""API keys: `Authorization: Bearer <key>`, compared in constant time, on every route but /health."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from ..errors import AigcError
from .errors import APIError

__all__ = ["require_key", "KeyName", "parse_keys"]


def parse_keys(lines: list[str], source: str) -> dict[str, str]:
    """Keys from lines of `name:key` or bare `key` (named key-1, key-2, ...); blank lines and # comments skipped."""
    keys: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, key = line.rpartition(":") if ":" in line else ("", "", line)
        if len(key) < 8:
            raise AigcError(f"a key in {source} is shorter than 8 characters; use long random keys "
                            f"(python -c 'import secrets; print(secrets.token_urlsafe(24))')")
        keys[key] = name or f"key-{len(keys) + 1}"
    return keys


def _match(given: str, keys: dict[str, str]) -> str | None:
    """The name of the key equal to `given`; every key is compared, so the time does not tell which one is close."""
    found = None
    for key, name in keys.items():
        if hmac.compare_digest(given.encode(), key.encode()):
            found = name
    return found


def require_key(request: Request) -> str | None:
    """The caller's key name (None when the server has no keys); 401 without a valid key."""
    keys = request.app.state.aigckit.settings.api_keys
    if not keys:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    name = _match(given.strip(), keys) if scheme.lower() == "bearer" else None
    if name is None:
        raise APIError(401, "a valid API key is needed: send the header 'Authorization: Bearer <key>'",
                       "authentication_error", {"WWW-Authenticate": "Bearer"})
    request.state.key_name = name
    return name


KeyName = Annotated[str | None, Depends(require_key)]
