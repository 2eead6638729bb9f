import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from aigckit import load
from aigckit.cli import app
from aigckit.config import DataConfig
from aigckit.data import load_dataset
from aigckit.evaluation.metrics import psnr
from aigckit.pipelines.inpaint import inpaint, inpaint_tensors
from aigckit.pipelines.masks import MASKS, centre_box


def digits(n=40):
    data = load_dataset(DataConfig(name="digits", image_size=8), "val")
    return data.images[:n], data.labels[:n]


@settings(max_examples=8, deadline=None)
@given(st.sampled_from(sorted(MASKS)), st.integers(0, 1000), st.sampled_from(["telea", "navier-stokes"]))
def test_known_pixels_are_returned_unchanged_classical(mask_name, seed, method):
    images, _ = digits(4)
    hole = MASKS[mask_name](8, generator=torch.Generator().manual_seed(seed))
    known = (~hole).float().expand(4, 1, 8, 8)
    out = inpaint_tensors(images, known, method=method)
    assert torch.equal(out * known, images * known)


@pytest.mark.slow
@pytest.mark.parametrize("fixture, method", [("trained_diffusion", "repaint"), ("trained_vae", "latent")])
def test_model_inpainting_beats_mean_fill_on_the_hole_and_keeps_known_pixels(request, fixture, method):
    pipeline = load(request.getfixturevalue(fixture))
    images, labels = digits()
    hole = centre_box(8, 0.5)[None, None].expand(len(images), 1, 8, 8)
    known = (~hole).float()
    options = {"steps": 25} if method == "repaint" else {}
    out = inpaint_tensors(images, known, method=method, pipeline=pipeline, seed=0, labels=labels, **options)
    assert torch.equal(out * known, images * known)
    mean_fill = known * images + (1 - known) * (images * known).flatten(1).sum(1).div(known.flatten(1).sum(1))[
        :, None, None, None]
    ours, baseline = psnr(out, images, hole).mean(), psnr(mean_fill, images, hole).mean()
    assert ours > baseline + 1.0, (ours, baseline)  # dB on the hole


def test_cli_inpaint_returns_the_input_size_and_keeps_known_pixels(trained_vae, tmp_path):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (40, 52), dtype=np.uint8))
    mask = np.zeros((40, 52), dtype=np.uint8)
    mask[10:25, 20:40] = 255
    image.save(tmp_path / "in.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    result = CliRunner().invoke(app, ["inpaint", str(trained_vae), "--image", str(tmp_path / "in.png"), "--mask",
                                      str(tmp_path / "mask.png"), "--out", str(tmp_path / "out.png")])
    assert result.exit_code == 0, result.output
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (40, 52)
    assert np.array_equal(out[mask == 0], np.asarray(image)[mask == 0])
    assert not np.array_equal(out[mask > 0], np.asarray(image)[mask > 0])


def test_wrong_method_and_mask_size_are_one_line_errors(trained_vae, tmp_path):
    Image.new("L", (8, 8)).save(tmp_path / "in.png")
    Image.new("L", (9, 9), 255).save(tmp_path / "mask.png")
    runner = CliRunner()
    result = runner.invoke(app, ["inpaint", str(trained_vae), "--image", str(tmp_path / "in.png"), "--mask",
                                 str(tmp_path / "mask.png")])
    assert result.exit_code == 2 and "give a mask of the image's size" in result.stderr
    Image.new("L", (8, 8), 255).save(tmp_path / "mask.png")
    result = runner.invoke(app, ["inpaint", str(trained_vae), "--image", str(tmp_path / "in.png"), "--mask",
                                 str(tmp_path / "mask.png"), "--method", "repaint"])
    assert result.exit_code == 2 and "supports --method latent" in result.stderr


def test_telea_needs_no_model():
    image = Image.new("L", (16, 16), 200)
    mask = Image.fromarray((np.asarray(centre_box(16)) * 255).astype(np.uint8))
    out = inpaint(image, mask, method="telea")
    assert abs(int(np.asarray(out)[8, 8]) - 200) <= 2  # a flat image is filled with its own grey
