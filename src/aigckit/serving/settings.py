"""The server's settings, in one pydantic class (the HTTP boundary's only configuration)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

__all__ = ["ServerSettings", "Limits", "KeyLimits"]


class Limits(BaseModel):
    """What one request may ask for; beyond it the server answers 413 or 422 with a clear message."""

    max_upload_bytes: int = 8 * 1024 * 1024
    max_image_side: int = 2048  # pixels, for uploaded images
    max_n: int = 16  # images or choices per request
    max_tokens: int = 1024
    max_prompt_chars: int = 8192
    max_steps: int = 1000  # sampler steps


class KeyLimits(BaseModel):
    """One key's own limits, where they differ from the server's (None: the server's setting)."""

    rate_per_minute: float | None = None
    concurrency: int | None = None


class ServerSettings(BaseModel):
    """Everything `aigckit serve` and `create_app` take."""

    runs: list[Path] = Field(default_factory=list)  # run directories or local transformers model directories
    lazy: bool = False  # load each model on its first request instead of at start-up
    device: str = "auto"  # "auto": CUDA when present, else CPU
    precision: str = "auto"  # the toolkit's precision rule: auto | fp32 | bf16
    data_dir: Path = Path("serve-data")  # images by content hash and the default SQLite database
    db_url: str | None = None  # SQLAlchemy URL; None: sqlite:///<data_dir>/history.db
    api_keys: dict[str, str] = Field(default_factory=dict)  # key -> name; empty: no authentication
    admin_keys: set[str] = Field(default_factory=set)  # names of keys (of api_keys) that may read /v1/usage
    rate_per_minute: float | None = None  # requests per minute per key (token bucket); None: unlimited
    rate_burst: int | None = None  # requests at once under rate_per_minute; None (and own rates): 10 s' worth
    concurrency_per_key: int | None = None  # requests in flight per key (a stream until it ends); None: unlimited
    key_limits: dict[str, KeyLimits] = Field(default_factory=dict)  # key name -> its own rate / concurrency
    max_queue: int = 64  # requests waiting per model; beyond it 429 with Retry-After
    max_batch_images: int = 64  # images in one sampler batch
    max_batch_text: int = 32  # rows in the text decoding batch
    batch_window_ms: float = 20.0  # how long an image request waits for others to share its batch
    request_timeout_s: float = 600.0  # a request or job still running after this fails with a timeout
    cors_origins: list[str] = Field(default_factory=list)  # empty: CORS off
    limits: Limits = Field(default_factory=Limits)

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the history database."""
        return self.db_url or f"sqlite:///{Path(self.data_dir).resolve() / 'history.db'}"
