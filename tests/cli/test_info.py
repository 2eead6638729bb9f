import json

import numpy as np
import typer
from PIL import Image
from typer.testing import CliRunner

from aigckit.cli.info import info_command
from aigckit.provenance import save_png

runner = CliRunner()
app = typer.Typer()
app.command()(info_command)
META = {"model": "dcgan-digits", "checkpoint_sha256": "0f" * 32, "seed": 42, "sampler": None, "steps": 20,
        "guidance": 2.0, "note": "extra field"}


def image() -> Image.Image:
    return Image.fromarray(np.zeros((8, 8), dtype=np.uint8))


def test_table_shows_every_field_on_its_line(tmp_path):
    path = tmp_path / "a.png"
    save_png(image(), path, META)
    result = runner.invoke(app, [str(path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("checkpoint_sha256" in line and "0f" * 32 in line for line in lines)  # the hash is not wrapped
    for key, shown in [("model", "dcgan-digits"), ("seed", "42"), ("sampler", "-"), ("note", "extra field"),
                       ("version", "0.1.0")]:
        assert any(key in line and shown in line for line in lines), (key, result.stdout)
    order = [next(i for i, line in enumerate(lines) if f" {key} " in line) for key in ("model", "seed", "note")]
    assert order == sorted(order)  # known fields first, others after


def test_json_output_is_the_typed_metadata(tmp_path):
    path = tmp_path / "a.png"
    save_png(image(), path, META)
    result = runner.invoke(app, [str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["metadata"]
    assert {k: data[k] for k in META} == META and list(data)[:2] == ["model", "checkpoint_sha256"]


def test_png_without_metadata_is_one_line_exit_1(tmp_path):
    path = tmp_path / "plain.png"
    image().save(path)
    result = runner.invoke(app, [str(path)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"error: no aigckit metadata in {path} (not made by aigckit, or a "
                                                  f"tool removed its text chunks)"]


def test_missing_and_non_png_files_are_one_line_errors(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    for name, message in [("missing.png", "no file at"), ("notes.png", "is not a PNG image")]:
        result = runner.invoke(app, [str(tmp_path / name), "--json"])
        assert result.exit_code == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
        assert result.stdout == ""
