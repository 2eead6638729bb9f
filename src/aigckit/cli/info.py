"""`aigckit info IMAGE.png [--json]`: the provenance metadata aigckit wrote into an image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..errors import AigcError
from .common import user_errors

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


@user_errors
def info_command(
    image: Annotated[Path, typer.Argument(help="a PNG image written by aigckit (sample, inpaint or the server)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the metadata as one JSON object")] = False,
) -> None:
    """Show the provenance metadata of an image: model, checkpoint, seed, sampler settings, time, version."""
    from ..provenance import read_metadata

    metadata = read_metadata(image)
    if not metadata:
        raise NoMetadata(f"no aigckit metadata in {image} (not made by aigckit, or a tool removed its text chunks)")
    if as_json:
        typer.echo(json.dumps(dict(ordered(metadata)), indent=2, ensure_ascii=False))
        return
    table = Table(title=str(image), show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in ordered(metadata):
        table.add_row(key, "-" if value is None else str(value))
    # wide enough for a 64-character checkpoint hash on one line, even when the output is piped (80 columns)
    needed = max(len(key) + len(str(value)) for key, value in metadata.items()) + 7
    console = Console(highlight=False)
    if console.width < needed:
        console = Console(highlight=False, width=needed)
    console.print(table)
