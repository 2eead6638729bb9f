"""The secret key of the image watermark: `AIGCKIT_WATERMARK_KEY`, else a key file made on first use.

The key file lives in the user's config folder (`$XDG_CONFIG_HOME/aigckit/watermark.key`, or
`~/.config/aigckit/watermark.key`), readable by its owner only (mode 0600), never in a run directory: run directories
are shared and published, and whoever holds the key can both forge and remove the watermark.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path

from ..atomic import fsync_path
from ..errors import AigcError

__all__ = ["KEY_ENV", "MIN_KEY_CHARS", "config_dir", "key_file", "watermark_key", "parse_key"]

KEY_ENV = "AIGCKIT_WATERMARK_KEY"
MIN_KEY_CHARS = 16
KEY_BYTES = 32
_CREATE_LOCK = threading.Lock()


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user's aigckit config folder: $XDG_CONFIG_HOME/aigckit, or ~/.config/aigckit."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "aigckit"


def key_file(environ: Mapping[str, str] | None = None) -> Path:
    """Where the watermark key file is (or will be created)."""
    return config_dir(environ) / "watermark.key"


def _secret(text: str, source: str) -> bytes:
    """The key bytes of a secret given as text; AigcError if it is too short to be a secret."""
    text = text.strip()
    if len(text) < MIN_KEY_CHARS:
        raise AigcError(f"the watermark key from {source} has {len(text)} characters; give at least "
                        f"{MIN_KEY_CHARS}, e.g. python -c 'import secrets; print(secrets.token_hex(32))'")
    return text.encode("utf-8")


def _read_key_file(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise AigcError(f"cannot read the watermark key file {path} ({error.__class__.__name__}); fix its "
                        f"permissions, or remove it to have a new key made (old images then no longer verify)") from None
    return _secret(text, str(path))


def _create_key_file(path: Path) -> bytes:
    """Write a new random key to `path` unless another process got there first; the key that won, either way."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(secrets.token_hex(KEY_BYTES) + "\n")
        fsync_path(tmp)
        try:
            # a hard link never replaces an existing file: of two processes making the key at once, the first wins
            # and both use its key (atomic_path's rename would let the second overwrite a key already in use)
            os.link(tmp, path)
        except FileExistsError:
            pass
        fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key_file(path)


def watermark_key(environ: Mapping[str, str] | None = None, *, create: bool = True) -> bytes:
    """The watermark key: AIGCKIT_WATERMARK_KEY if set, else the key file (made on first use when `create`)."""
    environ = os.environ if environ is None else environ
    if environ.get(KEY_ENV) is not None:
        return _secret(environ[KEY_ENV], f"${KEY_ENV}")
    path = key_file(environ)
    if path.is_file():
        return _read_key_file(path)
    if not create:
        raise AigcError(f"no watermark key: ${KEY_ENV} is not set and {path} does not exist; give the key that "
                        f"marked the image with --key (or set ${KEY_ENV})")
    with _CREATE_LOCK:
        return _create_key_file(path)


def parse_key(value: str) -> bytes:
    """--key: the path of a key file, or the secret itself."""
    path = Path(value).expanduser()
    if path.is_file():
        return _read_key_file(path)
    return _secret(value, "--key")
