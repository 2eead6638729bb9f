"""`aigckit detect FILE... [--json]`: was this image, clip or text made by aigckit? The image watermark's detector
for images, its every-frame reading for clips (GIF, MP4), the text watermark's (Kirchenbauer et al. 2023) for text
files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from PIL import Image, UnidentifiedImageError

from ..errors import AigcError
from .common import user_errors

__all__ = ["detect_command", "image_key", "detect_image", "detect_video", "open_image", "is_png", "is_video"]

IMAGE_KEY_HELP = ("image watermark key: a key file or the secret [default: $AIGCKIT_WATERMARK_KEY, else the key file "
                  "in the config folder]")


def image_key(value: str | None) -> bytes:
    """--key, or the configured key (never made here: a detector with a new key would find nothing)."""
    from ..provenance.keys import parse_key, watermark_key

    return parse_key(value) if value is not None else watermark_key(create=False)


def open_image(path: Path) -> Image.Image | None:
    """The image in `path`, decoded; None when it is no image PIL reads (a text file, say)."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except UnidentifiedImageError:
        return None
    except (OSError, Image.DecompressionBombError) as error:
        raise AigcError(f"{path} is a damaged image ({str(error).splitlines()[0] or 'unreadable'}); "
                        f"give an intact file") from None


def is_png(path: Path) -> bool:
    """Whether the file starts with the PNG signature."""
    with path.open("rb") as file:
        return file.read(8) == b"\x89PNG\r\n\x1a\n"


def is_video(path: Path) -> bool:
    """Whether the file is a clip: a video file by its suffix, or a GIF of more than one frame."""
    from ..video import VIDEO_SUFFIXES

    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix != ".gif":
        return False
    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1) > 1
    except (UnidentifiedImageError, OSError):
        return False  # read as an image, which says what is wrong with it


def detect_image(image: Image.Image, key: bytes, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The watermark verdict of an image, and whether its ids agree with its metadata (when it has any)."""
    from ..provenance.marking import read_watermark

    return _with_metadata(read_watermark(image, key), metadata)


def detect_video(path: Path, key: bytes) -> dict[str, Any]:
    """The watermark verdict of a clip (every frame read), and whether its ids agree with the metadata in its
    comment (when it has any)."""
    from ..provenance.marking import read_video_metadata, read_video_watermark
    from ..video import read_video

    return _with_metadata(read_video_watermark(read_video(path), key), read_video_metadata(path))


def _with_metadata(result: dict[str, Any], metadata: dict[str, Any] | None) -> dict[str, Any]:
    from ..provenance.payload import decode

    sha, seed = (metadata or {}).get("checkpoint_sha256"), (metadata or {}).get("seed")
    if result["detected"] and isinstance(sha, str) and isinstance(seed, int):
        payload = decode(result["bits"])
        result["matches_metadata"] = payload.matches_checkpoint(sha) and payload.matches_seed(seed)
        result["bits_differing_from_metadata"] = payload.checkpoint_distance(sha) + payload.seed_distance(seed)
    return result


def _detect_text(path: Path, run: Path | None, text_key: str | None, threshold: float) -> dict[str, Any]:
    from .watermark import key_material, read_text, run_vocabulary

    if run is None or text_key is None:
        raise AigcError(f"{path} is text: its watermark detector needs --run (the model's run) and --text-key (the "
                        f"key it generated with)")
    text = read_text(path)
    vocab_size, tokenizer = run_vocabulary(run)
    score = key_material(text_key, vocab_size, tokenizer, gamma=None, context_width=None).score(tokenizer.encode(text))
    return {"detected": score.z > threshold, "z": score.z, "p_value": score.p_value, "green": score.green,
            "scored": score.scored, "threshold": threshold}


def _line(result: dict[str, Any]) -> str:
    verdict = "watermarked" if result["detected"] else "no watermark found"
    if result["kind"] == "text":
        return (f"{result['file']}: {verdict} (text; z = {result['z']:.2f}, p = {result['p_value']:.3g}; "
                f"{result['green']} of {result['scored']} tokens green)")
    accuracy = "-" if result["bit_accuracy"] is None else f"{result['bit_accuracy']:.3f}"
    line = f"{result['file']}: {verdict} ({result['kind']}; bit accuracy {accuracy}, p = {result['p_value']:.3g}"
    if result["payload"]:
        ids = result["payload"]
        line += f"; model id {ids['model_id']}, generation id {ids['generation_id']}"
        if "matches_metadata" in result:
            line += ", as its metadata says" if result["matches_metadata"] else ", NOT as its metadata says"
            if result["matches_metadata"] and result["bits_differing_from_metadata"]:
                flipped = result["bits_differing_from_metadata"]
                line += f" ({flipped} bit{'s' if flipped > 1 else ''} flipped)"
    return line + ")"


@user_errors
def detect_command(
    files: Annotated[list[Path], typer.Argument(help="images (PNG, JPEG, WebP, ...), clips (GIF, MP4) or UTF-8 text "
                                                    "files")],
    key: Annotated[Optional[str], typer.Option(help=IMAGE_KEY_HELP)] = None,
    run: Annotated[Optional[Path], typer.Option(help="text: run (or transformers model directory) whose tokenizer "
                                                     "wrote the text")] = None,
    text_key: Annotated[Optional[str], typer.Option(help="text: an integer secret, or a key file written by "
                                                         "`aigckit watermark key`")] = None,
    threshold: Annotated[float, typer.Option(help="text: z-score above which it counts as watermarked")] = 4.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the results as a JSON list")] = False,
) -> None:
    """Run the right watermark detector on each file: verdict, bit accuracy or z, p-value, decoded payload (a clip:
    every frame read)."""
    from ..provenance.png import read_metadata

    if not math.isfinite(threshold):
        raise AigcError(f"--threshold must be a finite z-score, got {threshold}")
    for path in files:
        if not path.is_file():
            raise AigcError(f"no file at {path}; give images, clips or text files to test")
    videos = {path for path in files if is_video(path)}
    images = {path: open_image(path) for path in files if path not in videos}
    keys: dict[str, bytes] = {}
    results = []
    for path in files:
        if path in videos:
            if "image" not in keys:
                keys["image"] = image_key(key)
            results.append({"file": str(path), "kind": "video", **detect_video(path, keys["image"])})
            continue
        image = images[path]
        if image is None:
            result = {"file": str(path), "kind": "text", **_detect_text(path, run, text_key, threshold)}
        else:
            if "image" not in keys:
                keys["image"] = image_key(key)
            metadata = read_metadata(path) if is_png(path) else None
            result = {"file": str(path), "kind": "image", **detect_image(image, keys["image"], metadata)}
        results.append(result)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    else:
        for result in results:
            typer.echo(_line(result))
