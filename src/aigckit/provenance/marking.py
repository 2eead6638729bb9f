"""One way every generated image is written: watermarked (unless opted out, which is recorded), its provenance in PNG
text chunks, and a signed C2PA manifest when signing credentials are configured."""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .credentials import SigningCredentials, sign, signing_credentials
from .keys import watermark_key
from .payload import decode, encode, payload_bits
from .png import MetadataValue, png_bytes

__all__ = ["WATERMARK", "NO_WATERMARK", "configured", "watermark_image", "watermark_frames", "save_marked_video",
           "read_video_metadata", "marked_png", "read_watermark", "read_video_watermark", "png_of"]

WATERMARK = "aigckit-image-v1"  # the `watermark` field of a marked image: which detector reads it
NO_WATERMARK = "off"  # the `watermark` field when the user opted out


def configured(watermark: bool) -> tuple[bytes | None, SigningCredentials | None]:
    """What a writer of images needs: the watermark key (made on first use; None when `watermark` is off) and the
    signing credentials (None when none are configured)."""
    return (watermark_key() if watermark else None), signing_credentials()


def watermark_image(image: Image.Image, key: bytes, checkpoint_sha256: str | None,
                    seed: int | None) -> tuple[Image.Image, dict[str, MetadataValue]]:
    """`image` with the watermark embedded (payload: the model id and generation id), and the fields recording it.

    Without a seed (classical inpainting) the generation id is drawn at random; the fields record it either way."""
    from .image_watermark import embed

    n_bits = payload_bits(image.width, image.height)
    payload = encode(checkpoint_sha256, secrets.randbits(63) if seed is None else seed, n_bits)
    marked = embed(image, key, payload.bits) if n_bits else image
    return marked, _recorded(payload, n_bits)


def _recorded(payload: Any, n_bits: int) -> dict[str, MetadataValue]:
    ids = payload.describe()
    return {"watermark": WATERMARK, "watermark_bits": n_bits, "watermark_model_id": ids["model_id"],
            "watermark_generation_id": ids["generation_id"]}


def watermark_frames(frames: np.ndarray, key: bytes, checkpoint_sha256: str | None,
                     seed: int) -> tuple[np.ndarray, dict[str, MetadataValue]]:
    """A clip's uint8 frames (T, H, W, C) with the watermark in every frame (payload: the model id and generation
    id, as an image of the frames' size carries them), and the fields recording it."""
    from .video_watermark import embed_frames

    n_bits = payload_bits(frames.shape[2], frames.shape[1])
    payload = encode(checkpoint_sha256, seed, n_bits)
    return embed_frames(frames, key, payload.bits), _recorded(payload, n_bits)


def save_marked_video(frames: np.ndarray, path: str | Path, metadata: Mapping[str, Any], *, key: bytes | None,
                      fps: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Write a clip's uint8 frames (T, H, W, C) as a GIF or MP4 (by the suffix), atomically: watermarked with
    `key` (None: the user opted out, recorded as watermark=off), the fields as JSON in the file's comment
    (read_video_metadata). Returns the frames as written and the fields."""
    from ..video import check_clip_path, save_clip

    check_clip_path(path)  # before any marking
    fields: dict[str, Any] = dict(metadata)
    if key is None:
        fields["watermark"] = NO_WATERMARK
    else:
        frames, recorded = watermark_frames(frames, key, fields.get("checkpoint_sha256"), int(fields["seed"]))
        fields.update(recorded)
    save_clip(frames, path, fps=fps, comment=json.dumps(fields, sort_keys=True))
    return frames, fields


def read_video_metadata(path: str | Path) -> dict[str, Any] | None:
    """The fields save_marked_video recorded in a GIF or MP4, None when its comment holds none."""
    from ..video import read_comment

    comment = read_comment(path)
    try:
        fields = json.loads(comment) if comment else None
    except json.JSONDecodeError:
        return None
    return fields if isinstance(fields, dict) else None


def marked_png(image: Image.Image, metadata: Mapping[str, MetadataValue], *, key: bytes | None,
               credentials: SigningCredentials | None = None,
               edited_from: bytes | None = None) -> tuple[bytes, dict[str, Any]]:
    """PNG bytes of a generated image and the fields they record: watermarked with `key` (None: the user opted
    out, recorded as watermark=off), `metadata` in text chunks, signed with `credentials` when given
    (`edited_from`: the input file of an edit, recorded as its parent ingredient)."""
    fields: dict[str, Any] = dict(metadata)
    if key is None:
        fields["watermark"] = NO_WATERMARK
    else:
        image, recorded = watermark_image(image, key, fields.get("checkpoint_sha256"), fields.get("seed"))
        fields.update(recorded)
    data = png_bytes(image, fields)
    if credentials is not None:
        title = f"{fields.get('model') or 'aigckit'} image"
        data = sign(data, credentials, fields, title=title, edited_from=edited_from)
    return data, fields


def png_of(image: Image.Image) -> bytes:
    """The image encoded as a plain PNG (an edit's input as its manifest ingredient)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def read_watermark(image: Image.Image, key: bytes) -> dict[str, Any]:
    """Look for our watermark: verdict, p-value, bit accuracy and the decoded ids.

    The payload length follows the size the image was marked at (`payload_bits`), which a resize hides; each grid
    the detector tries stands for one marking size, so it reads the length that size implies, and one search
    covers every length without more hypotheses than the grids themselves."""
    from .image_watermark import detect

    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    return _found(detect(image, key, _lengths()))


def read_video_watermark(frames: np.ndarray, key: bytes) -> dict[str, Any]:
    """Look for our watermark in a clip's uint8 frames (T, H, W, C), every frame's vote combined
    (video_watermark): verdict, p-value, bit accuracy and the decoded ids, as read_watermark gives them."""
    from .video_watermark import detect_frames

    return _found(detect_frames(frames, key, _lengths()))


def _lengths() -> dict[int, int]:
    """The payload length an image marked on each grid carries (see read_watermark)."""
    from .image_watermark import GRIDS

    return {grid: payload_bits(grid, grid) for grid in GRIDS}


def _found(found: Any) -> dict[str, Any]:
    detected, n_bits = found.detected, len(found.bits)
    return {"detected": detected, "p_value": found.p_value, "bit_accuracy": found.bit_accuracy, "payload_bits": n_bits,
            "payload": decode(found.bits).describe() if detected else None, "bits": found.bits if detected else None}
