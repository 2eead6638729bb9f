"""Provenance metadata in PNG text chunks: which model, checkpoint, seed and settings made an image, and when.

Each field is written as its own iTXt chunk `aigckit:<field>` (readable by any PNG tool, e.g. `exiftool`), and the
whole dict once more as JSON in `aigckit:metadata`, which keeps the types (an int seed stays an int).
"""

from __future__ import annotations

import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Union

from PIL import Image, PngImagePlugin

from ..atomic import atomic_write_bytes
from ..errors import AigcError

__all__ = ["PREFIX", "METADATA_KEY", "MetadataValue", "png_bytes", "save_png", "read_metadata", "utc_now"]

PREFIX = "aigckit:"
METADATA_KEY = PREFIX + "metadata"
MetadataValue = Union[str, int, float, None]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def utc_now() -> str:
    """The current time in UTC as ISO 8601 with seconds, e.g. 2025-01-31T12:00:00Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _complete(metadata: dict[str, MetadataValue]) -> dict[str, MetadataValue]:
    """The metadata with `time` and `version` (of aigckit) added where absent; types and keys checked."""
    from .. import __version__

    full = dict(metadata)
    full.setdefault("time", utc_now())
    full.setdefault("version", __version__)
    for key, value in full.items():
        # PNG keywords are 1-79 Latin-1 characters; ours are plain field names under the prefix
        if not (isinstance(key, str) and key.isidentifier() and key.isascii() and len(PREFIX + key) <= 79):
            raise ValueError(f"provenance keys are short ASCII identifiers, got {key!r}")
        if value is not None and not isinstance(value, (str, int, float)):
            raise TypeError(f"provenance value of {key!r} must be str, int, float or None, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"provenance value of {key!r} must be finite, got {value}")
    return full


def png_bytes(image: Image.Image, metadata: dict[str, MetadataValue]) -> bytes:
    """Encode `image` as PNG carrying `metadata` (plus `time` in UTC and the aigckit `version`, unless given).

    Fields set to None are kept in the JSON chunk only (no empty per-field chunk).
    """
    full = _complete(metadata)
    info = PngImagePlugin.PngInfo()
    for key, value in full.items():
        if value is not None:
            info.add_itxt(PREFIX + key, str(value))
    info.add_itxt(METADATA_KEY, json.dumps(full, ensure_ascii=False, allow_nan=False))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def save_png(image: Image.Image, path: str | Path, metadata: dict[str, MetadataValue]) -> None:
    """Write `image` with its provenance metadata to `path` atomically."""
    atomic_write_bytes(path, png_bytes(image, metadata))


def read_metadata(source: str | Path | bytes) -> dict[str, Any]:
    """The aigckit metadata of a PNG file (or its bytes); {} when the PNG carries none.

    Values come typed from the JSON chunk; a PNG with only per-field chunks (JSON stripped) gives them as strings.
    """
    name = "the given bytes" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes):
        path = Path(source)
        if not path.is_file():
            raise AigcError(f"no file at {path}; give the path of a PNG image")
        with path.open("rb") as file:
            head = file.read(len(PNG_SIGNATURE))
    else:
        head = source[: len(PNG_SIGNATURE)]
    if head != PNG_SIGNATURE:
        raise AigcError(f"{name} is not a PNG image; aigckit writes its provenance metadata into PNG files")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=["PNG"]) as image:
            text = dict(image.text)  # loads the image, so chunks after the pixel data are read as well
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise AigcError(f"{name} is a damaged PNG ({str(error).splitlines()[0] if str(error) else 'unreadable'}); "
                        f"give an intact file") from None
    if METADATA_KEY in text:
        try:
            metadata = json.loads(text[METADATA_KEY])
        except json.JSONDecodeError:
            metadata = None
        if not isinstance(metadata, dict):
            raise AigcError(f"{name} has a damaged {METADATA_KEY} chunk (not a JSON object)")
        return metadata
    return {key[len(PREFIX):]: str(value) for key, value in text.items() if key.startswith(PREFIX)}
