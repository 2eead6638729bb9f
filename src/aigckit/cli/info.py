"""`aigckit info IMAGE [--json]`: an image's provenance: the metadata aigckit wrote into it, its other PNG text
chunks, its C2PA content credentials (validated) and the invisible watermark's verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from PIL import Image
from rich.console import Console
from rich.table import Table

from ..errors import AigcError
from .common import user_errors
from .detect import IMAGE_KEY_HELP, detect_image, image_key, is_png, open_image

__all__ = ["info_command"]

# the fields every generated image carries, shown first and in this order; any others follow alphabetically
ORDER = ("model", "checkpoint_sha256", "seed", "label", "sampler", "steps", "guidance", "eta", "time", "version")


class NoMetadata(AigcError):
    """A PNG that carries no aigckit metadata: not an error of use, so exit code 1, as grep finding nothing."""

    exit_code = 1


def ordered(metadata: dict[str, Any]) -> list[tuple[str, Any]]:
    """The fields in display order: the known ones first, then the rest by name."""
    known = [(key, metadata[key]) for key in ORDER if key in metadata]
    return known + sorted((key, value) for key, value in metadata.items() if key not in ORDER)


def _watermark(image_path: Path, key: str | None, metadata: dict[str, Any]) -> dict[str, Any]:
    """The watermark verdict, or why it was not checked (no key configured, or not an image)."""
    image = open_image(image_path)
    if image is None:
        return {"checked": False, "reason": "not an image"}
    try:
        secret = image_key(key)
    except AigcError as error:
        if key is not None:
            raise
        return {"checked": False, "reason": str(error)}
    return {"checked": True, **detect_image(image, secret, metadata)}


def _credentials(data: bytes) -> dict[str, Any] | None:
    from ..provenance.credentials import read_manifest

    if not data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")):
        return None
    report = read_manifest(data)
    return None if report is None else report.describe()


@user_errors
def info_command(
    image: Annotated[Path, typer.Argument(help="an image written by aigckit (sample, inpaint or the server)")],
    as_json: Annotated[bool, typer.Option("--json", help="print everything as one JSON object: metadata, png_text, "
                                                         "c2pa, watermark")] = False,
    key: Annotated[Optional[str], typer.Option(help=IMAGE_KEY_HELP)] = None,
) -> None:
    """Show an image's provenance: its metadata (model, checkpoint, seed, sampler settings, time, version), other
    PNG text chunks, its content credentials, validated, and whether it carries our watermark."""
    from ..provenance import read_metadata
    from ..provenance.png import PREFIX

    if not image.is_file() or is_png(image):
        metadata = read_metadata(image)  # its one-line errors for a missing, non-PNG or damaged file
        with Image.open(image) as opened:
            png_text = {k: v for k, v in opened.text.items() if not k.startswith(PREFIX)}
    elif open_image(image) is None:
        read_metadata(image)  # not an image at all: "is not a PNG image"
    else:
        metadata, png_text = {}, {}
    credentials = _credentials(image.read_bytes())
    watermark = _watermark(image, key, metadata)
    if not metadata and credentials is None and not watermark.get("detected"):
        raise NoMetadata(f"no aigckit metadata in {image} (not made by aigckit, or a tool removed its text chunks)")
    if as_json:
        typer.echo(json.dumps({"metadata": dict(ordered(metadata)), "png_text": png_text, "c2pa": credentials,
                               "watermark": watermark}, indent=2, ensure_ascii=False))
        return
    table = Table(title=str(image), show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key_name, value in ordered(metadata):
        table.add_row(key_name, "-" if value is None else str(value))
    for key_name, value in png_text.items():
        table.add_row(f"png {key_name}", value)
    rows = _credential_rows(credentials) + _watermark_rows(watermark)
    for key_name, value in rows:
        table.add_row(key_name, value)
    # wide enough for a 64-character checkpoint hash on one line, even when the output is piped (80 columns)
    shown = [(k, "-" if v is None else v) for k, v in metadata.items()] + rows
    needed = max(len(str(k)) for k, _ in shown) + max(len(str(v)) for _, v in shown) + 7
    console = Console(highlight=False)
    if console.width < needed:
        console = Console(highlight=False, width=needed)
    console.print(table)


def _credential_rows(credentials: dict[str, Any] | None) -> list[tuple[str, str]]:
    if credentials is None:
        return [("c2pa", "none (not signed)")]
    signer = credentials["signer"]
    rows = [("c2pa", f"{credentials['state']}" + (f" ({', '.join(credentials['failures'])})"
                                                   if credentials["failures"] else "")),
            ("c2pa signer", f"{signer.get('common_name', '?')} ({signer.get('issuer', '?')}, {signer.get('alg', '?')})"),
            ("c2pa actions", ", ".join(credentials["actions"]))]
    if credentials["ingredients"]:
        rows.append(("c2pa ingredients", ", ".join(f"{i['title']} ({i['relationship']})"
                                                   for i in credentials["ingredients"])))
    return rows


def _watermark_rows(watermark: dict[str, Any]) -> list[tuple[str, str]]:
    if not watermark["checked"]:
        return [("watermark check", f"not run: {watermark['reason']}")]
    verdict = "found" if watermark["detected"] else "not found"
    accuracy = "-" if watermark["bit_accuracy"] is None else f"{watermark['bit_accuracy']:.3f}"
    rows = [("watermark check", f"{verdict} (p = {watermark['p_value']:.3g}, bit accuracy {accuracy})")]
    if watermark["payload"]:
        ids = watermark["payload"]
        agreement = {True: ", as the metadata says", False: ", NOT as the metadata says", None: ""}
        rows.append(("watermark ids", f"model {ids['model_id']}, generation {ids['generation_id']}"
                                      f"{agreement[watermark.get('matches_metadata')]}"))
    return rows
