import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata
from typer.testing import CliRunner

from aigckit.cli import app
from aigckit.pipelines.style import stylize_gatys
from aigckit.provenance.marking import read_watermark
from aigckit.provenance.keys import watermark_key
from aigckit.provenance.png import read_metadata
from aigckit.style.features import RandomMultiScale, VGG19Features

runner = CliRunner()
CONTENT = Image.fromarray(skdata.astronaut())
STYLE = Image.fromarray(skdata.coffee())


@pytest.mark.parametrize("optimizer, steps", [("adam", 40), ("lbfgs", 10)])
def test_the_style_loss_falls_during_optimisation(optimizer, steps):
    result = stylize_gatys(CONTENT, STYLE, size=48, steps=steps, optimizer=optimizer, features=RandomMultiScale(0))
    first, final = result.info["first_losses"], result.info["final_losses"]
    assert final["style"] < 0.3 * first["style"], (first, final)
    assert result.image.size == (48, 48) and result.image.mode == "RGB"
    assert result.info["features"].startswith("random multi-scale features")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_lbfgs_spends_exactly_its_evaluations_and_returns_the_least_loss_it_saw(precision):
    # its strong-Wolfe line search asks for more evaluations than max_eval when a step ends mid-search
    for steps in (2, 3, 4, 5, 6):
        seen: list[dict[str, float]] = []
        result = stylize_gatys(CONTENT, STYLE, size=32, steps=steps, features=RandomMultiScale(0),
                               precision=precision, on_step=lambda step, losses, image: seen.append(losses))
        assert len(seen) == steps
        assert result.info["final_losses"] == min(seen, key=lambda losses: losses["total"])


def test_a_coarse_stage_starts_the_full_size_nearer_the_style():
    features = RandomMultiScale(0)
    seen: list[dict[str, float]] = []
    coarse = stylize_gatys(CONTENT, STYLE, size=64, steps=3, coarse_steps=20, features=features,
                           on_step=lambda step, losses, image: seen.append(losses))
    plain = stylize_gatys(CONTENT, STYLE, size=64, steps=3, features=features)
    assert [losses["size"] for losses in seen] == [32] * 20 + [64] * 3
    assert coarse.image.size == (64, 64) and coarse.info["coarse_steps"] == 20
    # the upsampled half-size result is already styled: its first full-size loss is far below the content's
    assert coarse.info["first_losses"]["style"] < 0.2 * plain.info["first_losses"]["style"]
    assert coarse.info["first_losses"]["size"] == 64


def test_the_full_size_keeps_the_detail_the_coarse_stage_never_saw():
    # a coarse stage of one evaluation returns its start, the half-size content; upsampled, plus the content's
    # detail band, that is the content again, so the full size starts where a plain run does
    features = RandomMultiScale(0)
    coarse = stylize_gatys(CONTENT, STYLE, size=64, steps=1, coarse_steps=1, features=features, precision="fp32")
    plain = stylize_gatys(CONTENT, STYLE, size=64, steps=1, features=features, precision="fp32")
    assert coarse.info["first_losses"]["content"] == pytest.approx(plain.info["first_losses"]["content"], abs=1e-6)
    difference = np.abs(np.asarray(coarse.image, np.int16) - np.asarray(plain.image, np.int16))
    assert difference.max() <= 1


def test_colour_preservation_keeps_the_content_colours_and_grey_stays_grey():
    result = stylize_gatys(CONTENT, STYLE, size=40, steps=5, preserve_color=True, features=RandomMultiScale(0))
    content = CONTENT.resize(result.image.size, Image.Resampling.LANCZOS)
    chroma = [np.asarray(im.convert("YCbCr"), dtype=float)[..., 1:] for im in (result.image, content)]
    assert np.abs(chroma[0] - chroma[1]).mean() < 2.0  # the content's Cb and Cr, up to rounding
    plain = stylize_gatys(CONTENT, STYLE, size=40, steps=5, features=RandomMultiScale(0))
    plain_chroma = np.asarray(plain.image.convert("YCbCr"), dtype=float)[..., 1:]
    assert np.abs(plain_chroma - chroma[1]).mean() > 2 * np.abs(chroma[0] - chroma[1]).mean()
    grey = stylize_gatys(Image.fromarray(skdata.camera()), STYLE, size=32, steps=2, features=RandomMultiScale(0))
    assert grey.image.mode == "L" and grey.image.size == (32, 32)


def test_stylize_cli_writes_a_marked_png_and_says_which_features(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGCKIT_VGG19", str(tmp_path / "absent.safetensors"))
    CONTENT.save(tmp_path / "c.png")
    STYLE.save(tmp_path / "s.jpg")
    common = ["stylize", "--content", str(tmp_path / "c.png"), "--style", str(tmp_path / "s.jpg"), "--size", "32",
              "--steps", "4", "--no-download"]
    result = runner.invoke(app, [*common, "--out", str(tmp_path / "o.png"), "--save-every", "2", "--coarse-steps", "2"])
    assert result.exit_code == 0, result.output
    assert "random multi-scale features" in result.output and "stand in" in result.output
    metadata = read_metadata(tmp_path / "o.png")
    assert metadata["method"] == "gatys" and metadata["features"].startswith("random multi-scale")
    assert metadata["style_weight"] == 1000.0 and metadata["steps"] == 4 and metadata["coarse_steps"] == 2
    assert metadata["scored_with"].startswith("random multi-scale features (seed 1") and metadata["patch_fd"] >= 0
    assert "content SSIM" in result.output
    assert read_watermark(Image.open(tmp_path / "o.png"), watermark_key())["detected"]
    assert (tmp_path / "o-step4.png").is_file() and not (tmp_path / "o-step6.png").exists()

    torch.save(VGG19Features().state_dict(), tmp_path / "vgg19.pth")
    assert runner.invoke(app, ["convert", str(tmp_path / "vgg19.pth"), "--out", str(tmp_path / "v.safetensors")]
                         ).exit_code == 0
    result = runner.invoke(app, [*common, "--out", str(tmp_path / "v.png"), "--vgg-weights",
                                 str(tmp_path / "v.safetensors"), "--no-watermark"])
    assert result.exit_code == 0, result.output
    assert read_metadata(tmp_path / "v.png")["features"].startswith("VGG-19 ImageNet weights (v.safetensors")


@pytest.mark.parametrize("args, message", [
    (["--method", "picasso"], "unknown method 'picasso'; available: gatys"),
    (["--optimizer", "sgd"], "unknown optimizer 'sgd'; use lbfgs or adam"),
    (["--size", "8"], "--size must be at least 16"),
    (["--vgg-weights", "nowhere.safetensors"], "--vgg-weights nowhere.safetensors is not a file"),
])
def test_stylize_refuses_bad_options_in_one_line(tmp_path, args, message):
    CONTENT.resize((32, 32)).save(tmp_path / "c.png")
    result = runner.invoke(app, ["stylize", "--content", str(tmp_path / "c.png"), "--style", str(tmp_path / "c.png"),
                                 "--out", str(tmp_path / "o.png"), "--steps", "1", "--no-download", *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o.png").exists()
