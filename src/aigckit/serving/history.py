"""What the server made: a history of generations in a database, and the images and videos by content hash.

SQLite (one server process; WAL journal so readers never wait for the writer) or PostgreSQL (several server
processes sharing one history), both through SQLAlchemy. Every call opens its own Session, so worker threads and
the event loop may record and read at the same time.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, DateTime, Float, Index, String, Text, create_engine, event, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from ..atomic import atomic_write_bytes
from ..errors import AigcError

__all__ = ["HistoryStore", "HistoryRecord", "ImageStore", "VideoStore", "new_id", "MAX_PAGE"]

MAX_PAGE = 500
BUSY_TIMEOUT_MS = 10_000  # a writer waits this long for another one instead of failing with "database is locked"
ID_PATTERN = re.compile(r"[0-9a-f]{24}")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KINDS = ("image", "video", "text")

_id_lock = threading.Lock()
_last_micros = 0


def new_id() -> str:
    """A 24-hex-digit id that sorts by creation time: 14 digits of microseconds since 1970, 10 random digits.

    Strictly increasing within a process; across processes ordered to the microsecond of their clocks.
    """
    global _last_micros
    with _id_lock:
        _last_micros = max(time.time_ns() // 1000, _last_micros + 1)
        return f"{_last_micros:014x}{secrets.token_hex(5)}"


class Base(DeclarativeBase):
    """The history's tables."""


class Generation(Base):
    """One generation request the server handled: its parameters, where it ran, how long, and what came out."""

    __tablename__ = "generations"
    __table_args__ = (Index("ix_generations_model_id_id", "model_id", "id"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    model_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(8))  # "image" | "video" | "text"
    job_type: Mapped[str] = mapped_column(String(64))  # "images.generations", "images.edits", "completions", ...
    checkpoint_sha256: Mapped[Optional[str]] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    seed: Mapped[Optional[int]] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    queued_ms: Mapped[Optional[float]] = mapped_column(Float)
    run_ms: Mapped[Optional[float]] = mapped_column(Float)
    outputs: Mapped[list[Any]] = mapped_column(JSON)  # image or video sha256 names, or texts
    api_key_name: Mapped[Optional[str]] = mapped_column(String(255))
    error: Mapped[Optional[str]] = mapped_column(Text)


@dataclass(frozen=True)
class HistoryRecord:
    """A generation as read back from the history."""

    id: str
    created_at: datetime
    model_id: str
    kind: str
    job_type: str
    checkpoint_sha256: str | None
    params: dict[str, Any]
    seed: int | None
    status: str
    queued_ms: float | None
    run_ms: float | None
    outputs: list[Any]
    api_key_name: str | None
    error: str | None

    @classmethod
    def from_row(cls, row: Generation) -> HistoryRecord:
        """The record of a database row (times in UTC: SQLite gives them back without a zone)."""
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=timezone.utc)
        return cls(id=row.id, created_at=created, model_id=row.model_id, kind=row.kind, job_type=row.job_type,
                   checkpoint_sha256=row.checkpoint_sha256, params=row.params, seed=row.seed, status=row.status,
                   queued_ms=row.queued_ms, run_ms=row.run_ms, outputs=row.outputs, api_key_name=row.api_key_name,
                   error=row.error)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, `created_at` as ISO 8601 in UTC and the timings grouped."""
        fields = dict(self.__dict__)
        fields["created_at"] = self.created_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        fields["timings"] = {"queued_ms": fields.pop("queued_ms"), "run_ms": fields.pop("run_ms")}
        return fields


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """On every new SQLite connection: WAL journal (readers do not block the writer), synchronous=NORMAL (what
    SQLite advises with WAL: a commit does not wait for fsync; a crash may lose the last records, never corrupts
    the file) and a busy timeout."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def _engine(url: str) -> Engine:
    """An engine for a history URL; SQLite files get their folder created and the pragmas set on connect."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise AigcError(f"--db {url!r} is not a database URL; use sqlite:///path/history.db or "
                        f"postgresql+psycopg://user:password@host/dbname") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory":
            raise AigcError("an in-memory SQLite history is not shared between the server's threads and is lost on "
                            "exit; give a file: sqlite:///path/history.db")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite")
    except (NoSuchModuleError, ImportError) as error:
        raise AigcError(f"no database driver for {parsed.drivername} ({str(error).splitlines()[0]}); for "
                        f"PostgreSQL install psycopg: pip install 'psycopg[binary]'") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class HistoryStore:
    """The history of generations in a database given by URL; tables are created on open."""

    def __init__(self, url: str) -> None:
        self.engine = _engine(url)
        try:
            Base.metadata.create_all(self.engine)
        except OperationalError as error:
            shown = self.engine.url.render_as_string(hide_password=True)
            self.engine.dispose()
            reason = str(error.orig).strip().splitlines()[0] if error.orig else "unreachable"
            raise AigcError(f"cannot open the history database {shown}: {reason}") from None
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def record(self, *, model_id: str, kind: str, job_type: str, params: dict[str, Any], status: str,
               checkpoint_sha256: str | None = None, seed: int | None = None, queued_ms: float | None = None,
               run_ms: float | None = None, outputs: list[Any] | None = None, api_key_name: str | None = None,
               error: str | None = None, created_at: datetime | None = None) -> str:
        """Store one generation and return its id (ids sort by creation time)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        row = Generation(id=new_id(), created_at=created_at or datetime.now(timezone.utc), model_id=model_id,
                         kind=kind, job_type=job_type, checkpoint_sha256=checkpoint_sha256, params=params, seed=seed,
                         status=status, queued_ms=queued_ms, run_ms=run_ms, outputs=outputs or [],
                         api_key_name=api_key_name, error=error)
        with self.sessions.begin() as session:
            session.add(row)
        return row.id

    def get(self, record_id: str) -> HistoryRecord | None:
        """The record with this id, or None (also for a string that cannot be an id)."""
        if not ID_PATTERN.fullmatch(record_id):
            return None
        with self.sessions() as session:
            row = session.get(Generation, record_id)
            return None if row is None else HistoryRecord.from_row(row)

    def page(self, limit: int = 50, before: str | None = None, model: str | None = None,
             key_name: str | None = None) -> tuple[list[HistoryRecord], str | None]:
        """Up to `limit` records newest first, older than `before`, of `model` and made with the API key named
        `key_name` when given; and the cursor of the next page (the `before` to ask with), None on the last page."""
        if not 1 <= limit <= MAX_PAGE:
            raise AigcError(f"limit must be in 1..{MAX_PAGE}, got {limit}")
        if before is not None and not ID_PATTERN.fullmatch(before):
            raise AigcError(f"before must be a history id (24 hex digits, the 'next' of a previous page), "
                            f"got {before!r}")
        query = select(Generation).order_by(Generation.id.desc()).limit(limit + 1)
        if before is not None:
            query = query.where(Generation.id < before)
        if model is not None:
            query = query.where(Generation.model_id == model)
        if key_name is not None:
            query = query.where(Generation.api_key_name == key_name)
        with self.sessions() as session:
            rows = session.scalars(query).all()
            records = [HistoryRecord.from_row(row) for row in rows[:limit]]
        return records, records[-1].id if len(rows) > limit else None

    def close(self) -> None:
        """Close the database connections."""
        self.engine.dispose()


class ImageStore:
    """PNG files under `folder/images/`, named by the SHA-256 of their bytes and written once."""

    subfolder, suffix = "images", ".png"

    def __init__(self, folder: str | Path) -> None:
        self.root = Path(folder) / self.subfolder

    def check(self, data: bytes) -> None:
        """ValueError unless `data` is a PNG file."""
        if not data.startswith(PNG_SIGNATURE):
            raise ValueError("ImageStore keeps PNG files only")

    def put(self, data: bytes) -> str:
        """Store the file's bytes (once: the same bytes again write nothing) and return their sha256 hex."""
        self.check(data)
        sha = hashlib.sha256(data).hexdigest()
        path = self.path(sha)
        if not path.is_file():  # two writers of the same bytes each use their own temporary file (atomic_path)
            atomic_write_bytes(path, data)
        return sha

    def path(self, sha: str) -> Path:
        """The file by its sha256; anything but 64 lowercase hex digits is refused."""
        if not isinstance(sha, str) or not SHA256_PATTERN.fullmatch(sha):
            raise AigcError(f"a file name is 64 lowercase hex digits (its sha256), got {str(sha)[:80]!r}")
        return self.root / sha[:2] / f"{sha}{self.suffix}"

    def exists(self, sha: str) -> bool:
        """Whether a file with this sha256 is stored (False for anything that is no sha256)."""
        return isinstance(sha, str) and SHA256_PATTERN.fullmatch(sha) is not None and self.path(sha).is_file()


class VideoStore(ImageStore):
    """MP4 files under `folder/videos/`, named by the SHA-256 of their bytes and written once."""

    subfolder, suffix = "videos", ".mp4"

    def check(self, data: bytes) -> None:
        """ValueError unless `data` is an MP4 file (an ISO media file: its first box is `ftyp`)."""
        if data[4:8] != b"ftyp":
            raise ValueError("VideoStore keeps MP4 files only")
