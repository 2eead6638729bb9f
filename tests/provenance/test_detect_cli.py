"""`aigckit detect FILE...`: one command for images (our image watermark) and text (the text watermark), and
`aigckit info`'s watermark and credentials rows."""

import json

import pytest
from PIL import Image
from skimage import data as skdata
from typer.testing import CliRunner

from aigckit.cli import app
from aigckit.config import config_from_dict
from aigckit.provenance.keys import KEY_ENV
from aigckit.provenance.marking import marked_png
from aigckit.training import Trainer

KEY = "detect-test-secret-0123456789"
SHA = "c0ffee" + "0" * 58
runner = CliRunner()



@pytest.fixture()
def images(tmp_path):
    """A marked photo (PNG), the same photo re-encoded as JPEG, and the unmarked photo."""
    photo = Image.fromarray(skdata.astronaut()).resize((128, 128))
    data, _ = marked_png(photo, {"model": "m", "checkpoint_sha256": SHA, "seed": 77}, key=KEY.encode())
    (tmp_path / "marked.png").write_bytes(data)
    Image.open(tmp_path / "marked.png").save(tmp_path / "marked.jpg", quality=80)
    photo.save(tmp_path / "plain.png")
    return tmp_path


def test_images_verdicts_payload_and_json(images):
    files = [str(images / name) for name in ("marked.png", "marked.jpg", "plain.png")]
    result = runner.invoke(app, ["detect", *files, "--key", KEY])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{files[0]}: watermarked (image; bit accuracy 1.000")
    assert "model id c0ffee, generation id 00004d, as its metadata says" in lines[0]  # 77 = 0x4d
    assert "watermarked" in lines[1] and "model id c0ffee" in lines[1]
    assert lines[2].startswith(f"{files[2]}: no watermark found")
    found = json.loads(runner.invoke(app, ["detect", *files, "--key", KEY, "--json"]).stdout)
    assert [r["detected"] for r in found] == [True, True, False] and {r["kind"] for r in found} == {"image"}
    assert found[0]["p_value"] < 1e-6 and found[0]["payload"]["model_id"] == "c0ffee"
    assert found[0]["matches_metadata"] is True


def test_the_wrong_key_finds_nothing_and_no_key_is_one_line(images, tmp_path):
    result = runner.invoke(app, ["detect", str(images / "marked.png"), "--key", "another-secret-0123456789"])
    assert result.exit_code == 0 and "no watermark found" in result.stdout
    result = runner.invoke(app, ["detect", str(images / "marked.png")])  # none configured, none made
    assert result.exit_code == 2 and "no watermark key" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "config").exists()
    (tmp_path / "key").write_text(KEY)
    assert "watermarked (image" in runner.invoke(app, ["detect", str(images / "marked.png"), "--key",
                                                       str(tmp_path / "key")]).stdout


def test_info_shows_the_watermark_verdict_and_ids(images, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    result = runner.invoke(app, ["info", str(images / "marked.png")])
    assert result.exit_code == 0, result.output
    assert "found (p = " in result.stdout and "model c0ffee, generation 00004d, as the metadata says" in result.stdout
    info = json.loads(runner.invoke(app, ["info", str(images / "marked.jpg"), "--json"]).stdout)
    assert info["metadata"] == {} and info["watermark"]["detected"] and info["c2pa"] is None
    # a plain image: no metadata, no credentials, no watermark: exit 1 as before
    assert runner.invoke(app, ["info", str(images / "plain.png")]).exit_code == 1


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    config = config_from_dict({
        "model": {"name": "gpt", "preset": "tiny"}, "data": {"name": "pydoc", "block_size": 32},
        "train": {"max_steps": 1, "batch_size": 8, "use_ema": False, "log_every": 1, "sample_every": 1000,
                  "checkpoint_every": 1000, "precision": "fp32"}})
    Trainer(config, root / "run", show_progress=False).fit()
    return root / "run"


def test_text_files_go_to_the_text_detector(lm_run, images, tmp_path):
    generated = runner.invoke(app, ["generate", str(lm_run), "--prompt", "The ", "--max-new-tokens", "80",
                                    "--seed", "1", "--watermark-key", "9", "--watermark-delta", "6"])
    assert generated.exit_code == 0, generated.output
    (tmp_path / "marked.txt").write_text(generated.stdout, encoding="utf-8")
    (tmp_path / "plain.txt").write_text("Return the value of the named attribute of object. " * 4, encoding="utf-8")
    files = [str(tmp_path / "marked.txt"), str(tmp_path / "plain.txt"), str(images / "marked.png")]
    result = runner.invoke(app, ["detect", *files, "--run", str(lm_run), "--text-key", "9", "--key", KEY, "--json"])
    assert result.exit_code == 0, result.output
    text, plain, image = json.loads(result.stdout)
    assert text["kind"] == "text" and text["detected"] and not plain["detected"] and image["detected"]
    alone = runner.invoke(app, ["watermark", "detect", files[0], "--run", str(lm_run), "--key", "9", "--json"])
    assert json.loads(alone.stdout)["z"] == text["z"]  # the same detector as `aigckit watermark detect`
    result = runner.invoke(app, ["detect", files[0]])
    assert result.exit_code == 2 and "needs --run" in result.stderr
