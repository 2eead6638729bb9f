import inspect

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
from aigckit.errors import AigcError
from aigckit.evaluation.metrics import psnr
from aigckit.family import FAMILIES
from aigckit.pipelines.inpaint import CLASSICAL_METHODS, inpaint, inpaint_tensors, methods, model_method
from aigckit.pipelines.masks import MASKS, centre_box, half_image


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
    labels = labels if pipeline.num_classes else None
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
                                      str(tmp_path / "mask.png"), "--out", str(tmp_path / "out.png"),
                                      "--no-watermark"])  # exact known pixels; the watermark moves them a little
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
    assert result.exit_code == 2 and "inpaint with --method latent, not repaint" in result.stderr


def test_telea_needs_no_model():
    image = Image.new("L", (16, 16), 200)
    mask = Image.fromarray((np.asarray(centre_box(16)) * 255).astype(np.uint8))
    out = inpaint(image, mask, method="telea")
    assert abs(int(np.asarray(out)[8, 8]) - 200) <= 2  # a flat image is filled with its own grey


@pytest.mark.parametrize("name", [name for name in FAMILIES if FAMILIES.get(name).supports("inpaint")])
def test_a_family_that_inpaints_declares_its_method_and_options(name):
    family = FAMILIES.get(name)
    method, options = model_method(family)
    parameters = inspect.signature(family.inpaint).parameters  # the test may look; the pipeline must not need to
    assert options and all(parameters[option].kind is inspect.Parameter.KEYWORD_ONLY for option in options)
    assert method in methods() and method not in CLASSICAL_METHODS


def test_methods_are_one_per_inpainting_family_then_the_classical_ones():
    able = [FAMILIES.get(name) for name in FAMILIES if FAMILIES.get(name).supports("inpaint")]
    assert methods() == (*(model_method(family)[0] for family in able), *CLASSICAL_METHODS)
    assert len(set(methods())) == len(methods())
    assert model_method(FAMILIES.get("diffusion")) == ("repaint", {"steps", "jump_length", "resamplings", "guidance"})
    assert model_method(FAMILIES.get("vae")) == ("latent", {"iterations", "lr"})


@pytest.mark.parametrize("name", [name for name in FAMILIES if not FAMILIES.get(name).supports("inpaint")])
def test_a_family_without_the_capability_is_refused(name):
    with pytest.raises(AigcError, match=f"{name} models cannot inpaint images"):
        model_method(FAMILIES.get(name))


def test_classical_methods_refuse_what_they_cannot_use():
    images, labels = digits(2)
    known = (~centre_box(8))[None, None].float().expand(2, 1, 8, 8)
    with pytest.raises(AigcError, match="so labels cannot apply"):
        inpaint_tensors(images, known, method="telea", labels=labels)
    with pytest.raises(AigcError, match="so steps cannot apply"):
        inpaint_tensors(images, known, method="navier-stokes", steps=5)
    with pytest.raises(AigcError, match="unknown method 'teela'"):
        inpaint_tensors(images, known, method="teela")


def test_masks_refuse_what_they_cannot_draw():
    with pytest.raises(ValueError, match="unknown side 'middle'; known: right, left, bottom, top"):
        half_image(8, "middle")
    with pytest.raises(ValueError, match="fraction must be in"):
        centre_box(8, 0.0)
