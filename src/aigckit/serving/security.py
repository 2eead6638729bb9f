"""API keys and what each key may do: `Authorization: Bearer <key>` compared in constant time on every route but
/health (and the web page's own files), a token-bucket rate limit and a cap on requests in flight per key, and the
requests, tokens and images each key used.

A server without keys answers everyone, and counts and limits them all as one caller named "anonymous".
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from ..errors import AigcError
from .errors import APIError
from .settings import KeyLimits, ServerSettings

__all__ = ["require_key", "require_admin", "KeyName", "AdminKey", "KeyGuard", "TokenBucket", "Usage",
           "parse_key_lines", "ANONYMOUS"]

ANONYMOUS = "anonymous"  # the name usage and limits use on a server without keys


# ---------------------------------------------------------------------------------------------------- key lines
def _number(text: str, kind: type, what: str, source: str) -> float | int | None:
    if not text.strip():
        return None
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise AigcError(f"{what} {text.strip()!r} in {source} is not a positive {kind.__name__}; write "
                        f"name:key:rate_per_minute:concurrency, e.g. alice:<key>:60:4 (leave a field empty for the "
                        f"server's setting)")
    return value


def parse_key_lines(lines: list[str], source: str) -> tuple[dict[str, str], dict[str, KeyLimits]]:
    """Keys and their own limits from lines of `key`, `name:key` or `name:key:rate_per_minute:concurrency` (either
    number may be empty: the server's setting); blank lines and # comments are skipped. A bare key is named
    key-<first 8 hex digits of its sha256>, so the same key has the same name wherever it is given.

    Returns ({key: name}, {name: KeyLimits}) for the keys that set limits of their own.
    """
    keys: dict[str, str] = {}
    limits: dict[str, KeyLimits] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) not in (1, 2, 4):
            raise AigcError(f"a line of {source} has {len(parts) - 1} colons; write key, name:key or "
                            f"name:key:rate_per_minute:concurrency (names and keys hold no colon)")
        key = parts[0] if len(parts) == 1 else parts[1].strip()
        if len(key) < 8:
            raise AigcError(f"a key in {source} is shorter than 8 characters; use long random keys "
                            f"(python -c 'import secrets; print(secrets.token_urlsafe(24))')")
        name = parts[0].strip() if len(parts) > 1 else f"key-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
        if not name:
            raise AigcError(f"a line of {source} has an empty name before its key; write name:key")
        if name in keys.values() and keys.get(key) != name:
            raise AigcError(f"two keys in {source} are named {name!r}; give each key its own name")
        keys[key] = name
        if len(parts) == 4:
            rate = _number(parts[2], float, "the rate", source)
            concurrency = _number(parts[3], int, "the concurrency", source)
            if rate is not None or concurrency is not None:
                limits[name] = KeyLimits(rate_per_minute=rate, concurrency=concurrency)
    return keys, limits


# ---------------------------------------------------------------------------------------------------- the guard
class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; a request takes one."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate, self.burst = rate_per_s, burst
        self.tokens, self.updated = float(burst), time.monotonic()

    def take(self) -> float:
        """0 when a token was taken; otherwise the seconds until one will be there (nothing taken)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass
class Usage:
    """What one key used since the server started."""

    requests: int = 0
    tokens: int = 0  # completion tokens of finished text jobs
    images: int = 0  # images of finished image jobs
    videos: int = 0  # clips of finished video jobs
    speech: int = 0  # audio files of finished speech jobs
    in_flight: int = 0
    rejected: int = 0  # requests refused with 429 by the key's rate or concurrency limit


class KeyGuard:
    """Per key name: a token bucket, the requests in flight and the usage counts."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        for name, own in settings.key_limits.items():
            if name not in settings.api_keys.values():
                raise AigcError(f"limits are set for a key named {name!r}, but no key has that name")
        for what, value in [("rate_per_minute", settings.rate_per_minute), ("rate_burst", settings.rate_burst),
                            ("concurrency_per_key", settings.concurrency_per_key),
                            *[(f"{name}'s rate_per_minute", own.rate_per_minute)
                              for name, own in settings.key_limits.items()],
                            *[(f"{name}'s concurrency", own.concurrency) for name, own in settings.key_limits.items()]]:
            if value is not None and not value > 0:
                raise AigcError(f"{what} is {value}; give a positive number, or leave it unset for no limit")
        unknown = set(settings.admin_keys) - set(settings.api_keys.values())
        if unknown:
            raise AigcError(f"admin keys {', '.join(sorted(unknown))} are no key's name; name keys given in api_keys")
        names = sorted(set(settings.api_keys.values())) or [ANONYMOUS]
        self.usage: dict[str, Usage] = {name: Usage() for name in names}
        self._buckets: dict[str, TokenBucket] = {}
        for name in names:
            own = self._own(name).rate_per_minute
            rate = own or settings.rate_per_minute
            if rate is not None:  # a key's own rate saves up ten seconds' worth; the server's rate its burst
                burst = (None if own else settings.rate_burst) or max(1, math.floor(rate / 6))
                self._buckets[name] = TokenBucket(rate / 60, burst)
        self._lock = threading.Lock()

    def _own(self, name: str) -> KeyLimits:
        return self.settings.key_limits.get(name) or KeyLimits()

    def concurrency(self, name: str) -> int | None:
        """The most requests `name` may have in flight (None: no cap)."""
        return self._own(name).concurrency or self.settings.concurrency_per_key

    def authenticate(self, request: Request) -> str:
        """The name of the request's key (ANONYMOUS on a server without keys); 401 without a valid one."""
        keys = self.settings.api_keys
        if not keys:
            return ANONYMOUS
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        name = _match(given.strip(), keys) if scheme.lower() == "bearer" else None
        if name is None:
            raise APIError(401, "a valid API key is needed: send the header 'Authorization: Bearer <key>'",
                           "authentication_error", {"WWW-Authenticate": "Bearer"})
        return name

    def admit(self, name: str) -> None:
        """Count a request of `name` in flight; 429 with Retry-After beyond its concurrency cap or its rate."""
        with self._lock:
            usage = self.usage[name]
            cap = self.concurrency(name)
            if cap is not None and usage.in_flight >= cap:
                usage.rejected += 1
                raise APIError(429, f"this key has {usage.in_flight} requests in flight, its limit; wait for one "
                                    f"to end", "rate_limit_error", {"Retry-After": "1"})
            bucket = self._buckets.get(name)
            wait = bucket.take() if bucket is not None else 0.0
            if wait > 0:
                usage.rejected += 1
                raise APIError(429, f"this key may send {bucket.rate * 60:g} requests a minute; retry in "
                                    f"{math.ceil(wait)} s", "rate_limit_error",
                               {"Retry-After": str(math.ceil(wait))})
            usage.requests += 1
            usage.in_flight += 1

    def release(self, name: str) -> None:
        """A request of `name` ended (for a stream: when its last byte went out)."""
        with self._lock:
            self.usage[name].in_flight -= 1

    def job_ended(self, job: Any) -> None:
        """Count the tokens, images, clips or audio files a finished job of a key produced."""
        if job.status != "done" or job.result is None:
            return
        usage = self.usage.get(job.key_name or ANONYMOUS)
        if usage is None:
            return
        with self._lock:
            if "usage" in job.result:
                usage.tokens += job.result["usage"]["completion_tokens"]
            elif job.type == "videos":
                usage.videos += 1
            elif job.type == "audio.speech":
                usage.speech += 1
            else:
                usage.images += len(job.result.get("data", []))

    def report(self) -> dict[str, Any]:
        """GET /v1/usage: every key by name with its counts and limits (never the key itself)."""
        with self._lock:
            data = [{"object": "usage", "key": name, "requests": usage.requests, "tokens": usage.tokens,
                     "images": usage.images, "videos": usage.videos, "speech": usage.speech,
                     "in_flight": usage.in_flight, "rejected": usage.rejected,
                     "rate_per_minute": self._buckets[name].rate * 60 if name in self._buckets else None,
                     "concurrency": self.concurrency(name)} for name, usage in self.usage.items()]
        return {"object": "list", "data": data}


def _match(given: str, keys: dict[str, str]) -> str | None:
    """The name of the key equal to `given`; every key is compared, so the time does not tell which one is close."""
    found = None
    for key, name in keys.items():
        if hmac.compare_digest(given.encode(), key.encode()):
            found = name
    return found


def guard_of(request: Request) -> KeyGuard:
    """The app's KeyGuard."""
    return request.app.state.key_guard


async def require_key(request: Request) -> AsyncIterator[str | None]:
    """The caller's key name (None on a server without keys): 401 without a valid key, 429 beyond the key's rate
    or concurrency. The request counts as in flight until its response, a stream included, has ended."""
    guard = guard_of(request)
    name = guard.authenticate(request)
    request.state.key_name = name
    guard.admit(name)
    try:
        yield None if name == ANONYMOUS and not guard.settings.api_keys else name
    finally:
        guard.release(name)


def require_admin(request: Request, key: Annotated[str | None, Depends(require_key)]) -> str | None:
    """An admin key's name; 403 for other keys (a server without keys has no admins to tell apart)."""
    settings = guard_of(request).settings
    if settings.api_keys and key not in settings.admin_keys:
        raise APIError(403, "this key may not read usage; use a key named in the server's admin keys",
                       "permission_error")
    return key


KeyName = Annotated[str | None, Depends(require_key)]
AdminKey = Annotated[str | None, Depends(require_admin)]
