import io
import json
from datetime import datetime, timezone

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

import aigckit
from aigckit.errors import AigcError
from aigckit.provenance import png_bytes, read_metadata, save_png

META = {"model": "ddpm-digits", "checkpoint_sha256": "ab" * 32, "seed": 12345678901, "sampler": "dpm-solver++",
        "steps": 20, "guidance": 1.5, "eta": None, "label": 7}


def digit() -> Image.Image:
    return Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)


def chunk_types(data: bytes) -> list[bytes]:
    """The chunk types of a PNG in file order, read straight from the bytes (not through Pillow)."""
    types, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        types.append(data[at + 4:at + 8])
        at += 12 + length
    return types


def test_round_trip_keeps_types_pixels_and_adds_time_and_version():
    data = png_bytes(digit(), META)
    meta = read_metadata(data)
    assert {k: meta[k] for k in META} == META  # int seed stays int, float guidance float, None None
    assert isinstance(meta["seed"], int) and isinstance(meta["guidance"], float)
    assert meta["version"] == aigckit.__version__
    written = datetime.strptime(meta["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - written).total_seconds()) < 60
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and np.array_equal(np.asarray(image), np.asarray(digit()))


def test_one_itxt_chunk_per_field_plus_the_json_one():
    data = png_bytes(digit(), META)
    with Image.open(io.BytesIO(data)) as image:
        text = image.text
    ours = {k: v for k, v in text.items() if k.startswith("aigckit:")}
    assert ours["aigckit:model"] == "ddpm-digits" and ours["aigckit:seed"] == "12345678901"
    assert ours["aigckit:checkpoint_sha256"] == "ab" * 32 and "aigckit:time" in ours and "aigckit:version" in ours
    assert "aigckit:eta" not in ours  # None lives in the JSON only
    assert json.loads(ours["aigckit:metadata"])["eta"] is None
    assert chunk_types(data).count(b"iTXt") == len(ours) == len(META) - 1 + 2 + 1
    assert b"tEXt" not in chunk_types(data)


def test_given_time_and_version_are_kept():
    meta = read_metadata(png_bytes(digit(), {"model": "m", "time": "2020-01-01T00:00:00Z", "version": "9"}))
    assert meta["time"] == "2020-01-01T00:00:00Z" and meta["version"] == "9"


def test_save_png_writes_the_file_atomically(tmp_path):
    path = tmp_path / "out.png"
    save_png(digit(), path, META)
    assert read_metadata(path)["seed"] == META["seed"] and read_metadata(str(path))["model"] == "ddpm-digits"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary left behind


def test_png_without_our_chunks_gives_empty_dict(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "someone else")
    digit().save(tmp_path / "plain.png", pnginfo=info)
    assert read_metadata(tmp_path / "plain.png") == {}


def test_per_field_chunks_are_read_when_the_json_one_was_stripped(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("aigckit:model", "m")
    info.add_itxt("aigckit:seed", "3")
    digit().save(tmp_path / "stripped.png", pnginfo=info)
    assert read_metadata(tmp_path / "stripped.png") == {"model": "m", "seed": "3"}


@pytest.mark.parametrize("make, message", [
    (lambda p: digit().save(p, format="JPEG"), "is not a PNG image"),
    (lambda p: p.write_text("hello"), "is not a PNG image"),
    (lambda p: p.write_bytes(png_bytes(digit(), META)[:60]), "is a damaged PNG"),
    (lambda p: digit().save(p, pnginfo=_info("aigckit:metadata", "{not json")), "damaged aigckit:metadata chunk"),
    (lambda p: None, "no file at"),
])
def test_bad_files_are_one_line_errors(tmp_path, make, message):
    path = tmp_path / "x.png"
    make(path)
    with pytest.raises(AigcError) as error:
        read_metadata(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def _info(key: str, value: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(key, value)
    return info


def test_bytes_that_are_no_png_are_refused():
    with pytest.raises(AigcError, match="the given bytes is not a PNG"):
        read_metadata(b"GIF89a....")


@pytest.mark.parametrize("metadata, error", [
    ({"seed": [1, 2]}, TypeError),
    ({"guidance": float("nan")}, ValueError),
    ({"bad key": 1}, ValueError),
    ({"x" * 80: 1}, ValueError),
])
def test_values_that_cannot_be_written_are_refused(metadata, error):
    with pytest.raises(error):
        png_bytes(digit(), metadata)
