"""Every image aigckit writes is watermarked by default, with its payload and the opt-out recorded: `aigckit sample`,
`aigckit inpaint` and the server's generations."""

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from skimage import data as skdata
from typer.testing import CliRunner

from aigckit.cli import app
from aigckit.provenance.image_watermark import psnr
from aigckit.provenance.keys import KEY_ENV
from aigckit.provenance.marking import read_watermark, watermark_image
from aigckit.provenance.payload import MAX_BITS, decode, encode
from aigckit.provenance.png import read_metadata
from aigckit.serving import create_app
from aigckit.checkpoint import checkpoint_sha256
from aigckit.checkpoint import latest_checkpoint
from aigckit.training import Trainer
from helpers import tiny_config

KEY = "marking-test-secret-0123456789"
runner = CliRunner()


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch):
    """The key from the environment (conftest already gives a throwaway config folder and no signing)."""
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("marking") / "vae"
    Trainer(tiny_config({"name": "conv-vae"}, train={"max_steps": 1, "use_ema": False, "precision": "fp32"}), folder,
            show_progress=False).fit()
    return folder


def test_payload_round_trip_and_ids():
    sha = "959df8e7" + "0" * 56
    payload = encode(sha, 5, MAX_BITS)
    assert len(payload.bits) == 48 and decode(payload.bits) == payload
    assert payload.matches_checkpoint(sha) and payload.matches_seed(5) and payload.matches_seed(5 + 2 ** 24)
    assert not payload.matches_checkpoint("f" * 64) and not payload.matches_seed(5 ^ 0b111)  # 3 bits off
    assert payload.describe() == {"model_id": "959df8", "model_bits": 24, "generation_id": "000005",
                                  "generation_bits": 24}
    assert encode(None, 3, 4).bits == [0, 0, 1, 1]  # no model (classical inpainting): a zero model id


def test_ids_match_with_up_to_two_flipped_bits_each_and_not_with_three():
    from aigckit.provenance.payload import id_tolerance

    assert [id_tolerance(n) for n in (2, 4, 16, 24)] == [0, 0, 0, 2]  # an unrelated 24-bit id within 2: 1.8e-5
    sha, seed = "959df8e7" + "0" * 56, 5
    bits = encode(sha, seed, MAX_BITS).bits
    flipped = decode([b ^ (i in (0, 23, 30)) for i, b in enumerate(bits)])  # 2 model-id bits, 1 generation-id bit
    assert flipped.checkpoint_distance(sha) == 2 and flipped.seed_distance(seed) == 1
    assert flipped.matches_checkpoint(sha) and flipped.matches_seed(seed)
    three = decode([b ^ (i in (0, 1, 2)) for i, b in enumerate(bits)])
    assert not three.matches_checkpoint(sha) and three.matches_seed(seed)
    small = decode([b ^ (i == 0) for i, b in enumerate(encode(sha, seed, 8).bits)])  # 4-bit ids match exactly
    assert not small.matches_checkpoint(sha) and small.matches_seed(seed)


def test_detect_reads_flipped_ids_as_the_metadatas_and_says_how_many_flipped(tmp_path):
    from aigckit.provenance.image_watermark import embed
    from aigckit.provenance.png import png_bytes

    photo = Image.fromarray(skdata.astronaut()).resize((64, 64), Image.Resampling.LANCZOS)
    sha, seed = "ab" * 32, 12345
    sent = encode(sha, seed, MAX_BITS).bits
    for flips, verdict in (({3, 40}, "as its metadata says (2 bits flipped)"), ({1, 2, 3}, "NOT as its metadata says")):
        marked = embed(photo, KEY.encode(), [bit ^ (i in flips) for i, bit in enumerate(sent)])
        (tmp_path / "marked.png").write_bytes(png_bytes(marked, {"checkpoint_sha256": sha, "seed": seed}))
        line = runner.invoke(app, ["detect", str(tmp_path / "marked.png")]).stdout
        assert "watermarked" in line and verdict in line, line


def test_sample_marks_its_grid_with_model_and_seed_and_records_an_opt_out(run, tmp_path):
    marked, plain = tmp_path / "marked.png", tmp_path / "plain.png"
    result = runner.invoke(app, ["sample", str(run), "--n", "4", "--seed", "5", "--out", str(marked)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["sample", str(run), "--n", "4", "--seed", "5", "--out", str(plain), "--no-watermark"])
    assert result.exit_code == 0, result.output
    sha = checkpoint_sha256(latest_checkpoint(run))
    meta, plain_meta = read_metadata(marked), read_metadata(plain)
    assert meta["watermark"] == "aigckit-image-v1" and plain_meta["watermark"] == "off"
    assert meta["checkpoint_sha256"] == sha and meta["seed"] == 5 and meta["watermark_bits"] == 48
    found = read_watermark(Image.open(marked), KEY.encode())
    assert found["detected"] and found["p_value"] < 1e-6 and found["bit_accuracy"] == 1.0
    payload = decode(found["bits"])
    assert payload.matches_checkpoint(sha) and payload.matches_seed(5)
    assert not read_watermark(Image.open(plain), KEY.encode())["detected"]
    assert psnr(Image.open(plain), Image.open(marked)) >= 38  # invisible: the same grid apart from the mark
    # the mark survives a JPEG re-encode of the grid at quality 75
    buffer = io.BytesIO()
    Image.open(marked).convert("RGB").save(buffer, format="JPEG", quality=75)
    assert read_watermark(Image.open(buffer), KEY.encode())["detected"]


def test_sample_without_seed_draws_and_records_one(run, tmp_path):
    out = tmp_path / "grid.png"
    assert runner.invoke(app, ["sample", str(run), "--n", "2", "--out", str(out)]).exit_code == 0
    seed = read_metadata(out)["seed"]
    assert isinstance(seed, int) and decode(read_watermark(Image.open(out), KEY.encode())["bits"]).matches_seed(seed)


def test_inpaint_marks_its_result_and_no_watermark_keeps_known_pixels_exactly(tmp_path):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8))
    hole = np.zeros((64, 64), dtype=np.uint8)
    hole[20:40, 20:40] = 255
    image.save(tmp_path / "in.png")
    Image.fromarray(hole).save(tmp_path / "mask.png")
    common = ["inpaint", "--image", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png")]
    assert runner.invoke(app, [*common, "--out", str(tmp_path / "a.png")]).exit_code == 0
    assert runner.invoke(app, [*common, "--out", str(tmp_path / "b.png"), "--no-watermark"]).exit_code == 0
    marked, plain = np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png"))
    known = hole == 0
    assert np.array_equal(plain[known], np.asarray(image)[known])
    assert 0 < np.abs(marked.astype(int) - plain.astype(int)).max() <= 10  # the mark: a few levels at most
    assert read_watermark(Image.open(tmp_path / "a.png"), KEY.encode())["detected"]
    assert read_metadata(tmp_path / "a.png")["method"] == "telea"
    assert read_metadata(tmp_path / "b.png")["watermark"] == "off"


def test_server_marks_generations_unless_asked_not_to(run, tmp_path):
    with TestClient(create_app(runs=[run], data_dir=tmp_path / "serve")) as client:
        marked = client.post("/v1/images/generations", json={"model": "vae", "n": 2, "seed": 11}).json()["data"]
        plain = client.post("/v1/images/generations", json={"model": "vae", "n": 1, "seed": 11,
                                                            "watermark": False}).json()["data"][0]
    png = base64.b64decode(marked[0]["b64_json"])
    assert read_metadata(png)["watermark"] == "aigckit-image-v1" and marked[0]["aigckit"]["watermark_bits"] == 4
    found = read_watermark(Image.open(io.BytesIO(png)), KEY.encode())  # 8x8 images: a 4-bit payload
    assert found["detected"] and decode(found["bits"]).matches_seed(11)
    assert [item["aigckit"]["watermark_generation_id"] for item in marked] == ["3", "0"]  # seeds 11, 12: low 2 bits
    assert read_metadata(base64.b64decode(plain["b64_json"]))["watermark"] == "off"
    assert not read_watermark(Image.open(io.BytesIO(base64.b64decode(plain["b64_json"]))), KEY.encode())["detected"]


def test_server_marks_edits_unless_asked_not_to(run, tmp_path):
    rng = np.random.default_rng(1)
    image, hole = rng.integers(0, 256, (64, 64), dtype=np.uint8), np.zeros((64, 64), dtype=np.uint8)
    hole[20:40, 20:40] = 255
    files = {"image": ("i.png", png_bytes(image), "image/png"), "mask": ("m.png", png_bytes(hole), "image/png")}
    with TestClient(create_app(runs=[run], data_dir=tmp_path / "serve")) as client:
        marked, plain = (client.post("/v1/images/edits", files=files, data={"model": "telea", **extra})
                         for extra in ({}, {"watermark": "false"}))
        marked, plain = (base64.b64decode(r.json()["data"][0]["b64_json"]) for r in (marked, plain))
    assert read_metadata(marked)["watermark"] == "aigckit-image-v1"
    assert read_watermark(Image.open(io.BytesIO(marked)), KEY.encode())["detected"]
    assert read_metadata(plain)["watermark"] == "off"
    known = hole == 0
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(plain)))[known], image[known])


def png_bytes(pixels: np.ndarray) -> bytes:
    """A grey PNG file of `pixels`."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("side, shown", [(32, 32), (64, 64), (64, 128), (16, 16)])
def test_read_watermark_finds_the_payload_of_any_marking_size_in_one_search(side, shown):
    photo = Image.fromarray(skdata.astronaut()).resize((side, side), Image.Resampling.LANCZOS)
    marked, fields = watermark_image(photo, KEY.encode(), "ab" * 32, seed=12345)
    found = read_watermark(marked.resize((shown, shown), Image.Resampling.BICUBIC), KEY.encode())
    assert found["detected"], found
    assert found["payload_bits"] == fields["watermark_bits"] and decode(found["bits"]).matches_seed(12345)
    assert not read_watermark(photo.resize((shown, shown)), KEY.encode())["detected"]
