"""The style family: fast-style and AdaIN train through the Trainer, and their stylizers run from a run."""

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from aigckit.cli import app
from aigckit.config import DataConfig
from aigckit.data import load_dataset
from aigckit.data.photos import PHOTOS, VAL_PHOTOS, bundled_photo
from aigckit.errors import AigcError
from aigckit.pipelines.style import stylize_with_run
from aigckit.provenance.png import read_metadata
from aigckit.style.features import VGG19Features
from aigckit.style.networks import AdaINDecoder, adain, mean_std
from aigckit.training import Trainer

from helpers import tiny_config

runner = CliRunner()


def _train(tmp_path, name, steps, **model):
    config = tiny_config({"name": name, "features": "random", **model},
                         data={"name": "photos", "image_size": 32},
                         train={"batch_size": 4, "max_steps": steps, "use_ema": False, "precision": "fp32"})
    Trainer(config, tmp_path / name, show_progress=False).fit()
    with open(tmp_path / name / "metrics.csv") as f:
        return [row for row in csv.DictReader(f)]


def _mean(rows, key):
    return np.mean([float(row[key]) for row in rows])


def test_fast_style_learns_its_style(tmp_path):
    rows = _train(tmp_path, "fast-style", 60, preset="small", lr=2e-3)
    assert _mean(rows[-5:], "loss") < 0.85 * _mean(rows[:5], "loss"), (rows[:5], rows[-5:])


def test_adain_learns_to_decode_restyled_features(tmp_path):
    rows = _train(tmp_path, "adain", 40, lr=1e-3)
    assert _mean(rows[-5:], "loss") < 0.6 * _mean(rows[:5], "loss"), (rows[0], rows[-1])


def test_adain_gives_the_content_the_style_statistics():
    content, style = torch.randn(2, 8, 5, 6) * 3 + 1, torch.randn(2, 8, 7, 4) * 0.5 - 2
    out = adain(content, style)
    for got, want in zip(mean_std(out), mean_std(style)):
        assert torch.allclose(got, want, atol=1e-4)
    # per channel, the content's pattern survives: normalised, the two agree
    normalised = [(x - m) / s for x, (m, s) in ((out, mean_std(out)), (content, mean_std(content)))]
    assert torch.allclose(*normalised, atol=1e-3)


def test_the_adain_decoder_mirrors_vgg19_up_to_relu4_1_as_the_paper():
    network = VGG19Features().truncate("relu4_1")
    widths = network.layer_widths()
    assert [name for name, _ in widths][-1] == "relu4_1" and len(widths) == 9
    assert [w for _, w in widths] == [m.out_channels for m in network.features if isinstance(m, torch.nn.Conv2d)]
    decoder = AdaINDecoder(widths, 3)
    convs = [m for m in decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (512, 256), (256, 256), (256, 256), (256, 256), (256, 128), (128, 128), (128, 64), (64, 64), (64, 3)]
    assert decoder(torch.randn(1, 512, 4, 5)).shape == (1, 3, 32, 40)


def test_the_photos_dataset_holds_out_whole_photos():
    train = load_dataset(DataConfig(name="photos", image_size=16), "train")
    val = load_dataset(DataConfig(name="photos", image_size=16), "val")
    assert train.images.shape[1:] == (3, 16, 16) and train.labels is None
    assert len(train) + len(val) == 687 and len(val) == 153
    grey = load_dataset(DataConfig(name="photos", image_size=16, channels=1), "val")
    assert grey.images.shape[1:] == (1, 16, 16)
    assert set(VAL_PHOTOS) < set(PHOTOS)


def test_stylizers_run_from_their_runs_and_refuse_what_they_cannot_do(tmp_path):
    _train(tmp_path, "fast-style", 2)
    _train(tmp_path, "adain", 2)
    content, style = bundled_photo("astronaut").resize((60, 45)), bundled_photo("coffee")
    fast = stylize_with_run(tmp_path / "fast-style", content, size=40)
    assert fast.image.size == (40, 30) and fast.image.mode == "RGB" and fast.info["method"] == "fast"
    grey = stylize_with_run(tmp_path / "fast-style", content.convert("L"), size=40)
    assert grey.image.mode == "L"
    ada = stylize_with_run(tmp_path / "adain", content, style, size=40, alpha=0.5)
    assert ada.image.size == (40, 30) and ada.info["alpha"] == 0.5 and ada.info["features"] == "random"
    full = stylize_with_run(tmp_path / "adain", content, style, size=40, alpha=1.0)
    none = stylize_with_run(tmp_path / "adain", content, style, size=40, alpha=0.0)
    assert np.asarray(full.image).tolist() != np.asarray(none.image).tolist()
    with pytest.raises(AigcError, match="drop --style"):
        stylize_with_run(tmp_path / "fast-style", content, style)
    with pytest.raises(AigcError, match="needs the style image"):
        stylize_with_run(tmp_path / "adain", content)

    content.save(tmp_path / "c.png")
    style.save(tmp_path / "s.png")
    out = tmp_path / "o.png"
    result = runner.invoke(app, ["stylize", "--method", "fast", "--run", str(tmp_path / "fast-style"), "--content",
                                 str(tmp_path / "c.png"), "--out", str(out), "--size", "32"])
    assert result.exit_code == 0, result.output
    metadata = read_metadata(out)
    assert metadata["method"] == "fast" and metadata["features"] == "random" and "content_ssim" in metadata
    assert Image.open(out).size == (32, 24)
    wrong = runner.invoke(app, ["stylize", "--method", "adain", "--run", str(tmp_path / "fast-style"),
                                "--content", str(tmp_path / "c.png"), "--out", str(tmp_path / "x.png")])
    assert wrong.exit_code != 0 and "pass --method fast" in wrong.output.replace("\n", " ")
    assert not (tmp_path / "x.png").exists()
    missing = runner.invoke(app, ["stylize", "--method", "adain", "--content", str(tmp_path / "c.png")])
    assert missing.exit_code != 0 and "--run" in missing.output


def test_eval_scores_a_stylizer_run_against_the_unchanged_content(tmp_path):
    _train(tmp_path, "fast-style", 10, preset="small", lr=3e-3)
    result = runner.invoke(app, ["eval", str(tmp_path / "fast-style"), "--n", "6", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout[result.stdout.index("{"):])
    assert metrics["model"] == "fast-style" and metrics["n_images"] == 6
    assert metrics["scored_with"].startswith("random multi-scale features (seed 1")  # not the seed it trained on
    # the averages of style_scores over the held-out images, each stylised alone
    from aigckit.evaluation.metrics.style import style_scores
    from aigckit.imaging import to_pil
    from aigckit.pipelines import load

    pipeline = load(tmp_path / "fast-style")  # the precision eval samples in
    content = load_dataset(DataConfig(name="photos", image_size=32), "val").batch(torch.arange(6))["images"]
    outputs = to_pil(pipeline.sample(6, content=content))
    style = to_pil(pipeline.model.style_image)[0]
    direct = [style_scores(o, c, style) for o, c in zip(outputs, to_pil(content))]
    for key in ("style_distance", "patch_fd", "content_ssim", "edge_correlation"):
        assert metrics[key] == pytest.approx(np.mean([d[key] for d in direct]), rel=1e-4, abs=1e-6), key
    assert metrics["unchanged_content"]["content_ssim"] == pytest.approx(1.0)
    assert metrics["ms_per_image"] > 0
    assert (tmp_path / "fast-style" / "eval" / "stylized.png").is_file()
    refused = runner.invoke(app, ["eval", str(tmp_path / "fast-style"), "--sweep", "10"])
    assert refused.exit_code != 0 and "drop --sweep" in refused.output


def test_adain_at_alpha_0_gives_the_decoder_the_content_features_unchanged():
    from aigckit.family import FAMILIES

    config = tiny_config({"name": "adain", "features": "random"}, data={"name": "photos", "image_size": 16}).model
    config = dataclasses.replace(config, image_size=16, channels=3)
    model = FAMILIES.get("style").build(config)
    content, style = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 24, 24) * 2 - 1
    last = model.encoder_layers()[-1]
    assert last == "relu3_1"
    expected = model.encoder()((content + 1) / 2, (last,))[last]
    assert torch.equal(model.adain_features(content, style, alpha=0.0), expected)
    styled = model.adain_features(content, style, alpha=1.0)
    style_stats = mean_std(model.encoder()((style + 1) / 2, (last,))[last])
    assert torch.allclose(mean_std(styled)[0], style_stats[0].expand(2, -1, -1, -1), atol=1e-4)


def test_adain_encodes_a_same_size_pair_in_one_pass_as_it_would_apart():
    from aigckit.family import FAMILIES

    config = tiny_config({"name": "adain", "features": "random"}, data={"name": "photos", "image_size": 16}).model
    config = dataclasses.replace(config, image_size=16, channels=3)
    model = FAMILIES.get("style").build(config)
    encoder, last = model.encoder(), model.encoder_layers()[-1]
    content = torch.rand(2, 3, 16, 16) * 2 - 1
    for style in (torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1):  # one style, or one each
        apart = adain(encoder((content + 1) / 2, (last,))[last],
                      encoder((style + 1) / 2, (last,))[last].expand(2, -1, -1, -1))
        assert torch.allclose(model.adain_features(content, style), apart, atol=1e-5)


def test_a_narrower_random_encoder_scales_every_block_and_its_run_loads_with_it(tmp_path):
    from aigckit.pipelines import load

    _train(tmp_path, "adain", 2, encoder_width=16)
    model = load(tmp_path / "adain").model
    encoder_convs = [m for m in model.encoder().features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in encoder_convs] == [16, 16, 32, 32, 64]  # VGG-19's 64, 64, 128, 128, 256 / 4
    decoder_convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in decoder_convs] == [(64, 32), (32, 32), (32, 16), (16, 16), (16, 3)]
    assert "16/64 of its width" in model.encoder().description
    content, style = torch.rand(1, 3, 32, 24) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    assert model.stylize(content, style).shape == (1, 3, 32, 24)
