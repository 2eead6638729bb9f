"""Latent video diffusion: the autoencoder trained first in the run and frozen, the UNet on its latents, sampling
decoded by it, resume, and the configs it refuses."""

from __future__ import annotations

import csv

import pytest
import torch
from safetensors.torch import load_file

import aigckit.evaluation.video as video
from aigckit.checkpoint import from_pretrained, latest_checkpoint
from aigckit.errors import AigcError
from aigckit.evaluation.evaluate import evaluate_run
from aigckit.models.diffusion.config import DiffusionConfig
from aigckit.models.diffusion.family import DiffusionFamily, DiffusionModel, make_sampler
from aigckit.models.diffusion.samplers import SAMPLERS
from aigckit.models.diffusion.schedules import training_target
from aigckit.training import Trainer

from helpers import StopAt, tiny_config

FAMILY = DiffusionFamily()
AUTOENCODER_STEPS = 20


def _latent_video_config(model: dict | None = None, data: str = "moving-digits", **train):
    # moving digits at 16 px: latents 4x4 with 4 channels, the tiny UNet on them (8 and 16 channels at 4x4, 2x2)
    return tiny_config({"name": "diffusion", "conditional": True, "lr": 3e-3, "attention_resolution": 0,
                        "temporal_attention_resolution": 4, "latent_channels": 4, "autoencoder_width": 16,
                        "autoencoder_steps": AUTOENCODER_STEPS, **(model or {})},
                       data={"name": data, "image_size": 16},
                       train={"batch_size": 8, "use_ema": True, "num_samples": 2, "precision": "fp32", **train})


def _autoencoder_weights(checkpoint, name: str) -> dict[str, torch.Tensor]:
    weights = load_file(checkpoint / f"{name}.safetensors")
    return {k: v for k, v in weights.items() if k.startswith("autoencoder.")}


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("latent") / "run"
    Trainer(_latent_video_config(max_steps=50, log_every=1, checkpoint_every=AUTOENCODER_STEPS,
                                 sample_every=50), run, show_progress=False).fit()
    return run


def test_the_autoencoder_trains_first_then_freezes_while_the_unet_learns_its_latents(latent_run):
    with open(latent_run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 50
    stage_one, stage_two = rows[:AUTOENCODER_STEPS], rows[AUTOENCODER_STEPS:]
    assert all(row["autoencoder_l1"] and not row["loss"] for row in stage_one)
    assert all(row["loss"] and not row["autoencoder_l1"] for row in stage_two)
    l1 = [float(row["autoencoder_l1"]) for row in stage_one]
    assert sum(l1[-5:]) < 0.7 * sum(l1[:5]), l1
    loss = [float(row["loss"]) for row in stage_two]
    assert sum(loss[-8:]) < 0.8 * sum(loss[:8]), loss
    # frozen at the switch: the live autoencoder of the last checkpoint is the one of the end of its stage, and the
    # saved average (EMA, what sampling loads) is that same one to the last bit
    at_switch = _autoencoder_weights(latent_run / "checkpoints" / f"step-{AUTOENCODER_STEPS:06d}", "model")
    final = _autoencoder_weights(latest_checkpoint(latent_run), "model")
    assert latest_checkpoint(latent_run).name == "step-000050" and any("latent_std" in k for k in final)
    assert at_switch.keys() == final.keys()
    assert all(torch.equal(weight, final[name]) for name, weight in at_switch.items())
    model = from_pretrained(latest_checkpoint(latent_run))
    for name, weight in model.autoencoder.state_dict().items():
        assert torch.equal(weight, at_switch[f"autoencoder.{name}"]), name


def test_a_latent_video_run_samples_pixel_clips_decoded_by_its_autoencoder(latent_run):
    from aigckit.pipelines import VideoPipeline, load

    model = from_pretrained(latest_checkpoint(latent_run))
    assert model.denoised_shape == (8, 4, 4, 4) and model.sample_shape == (8, 1, 16, 16)
    labels = torch.tensor([[3], [7]])
    clips = FAMILY.sample(model, 2, labels=labels, generator=torch.Generator().manual_seed(0))
    assert clips.shape == (2, 8, 1, 16, 16) and clips.abs().max() <= 1
    # the same clips through the pipeline: noise in latent space, decoded at the end
    pipeline = load(latent_run, precision="fp32")
    assert isinstance(pipeline, VideoPipeline)
    assert torch.equal(clips, pipeline.sample(2, labels=[3, 7], seed=0))
    trajectory = []
    FAMILY.sample(model, 2, labels=labels, generator=torch.Generator().manual_seed(0), trajectory=trajectory)
    assert trajectory[0][1].shape == (2, 8, 1, 16, 16)  # decoded for whoever draws it


def test_the_autoencoder_reconstructs_the_clips_it_was_trained_on_better_than_at_its_start(latent_run):
    from aigckit.config import DataConfig
    from aigckit.data import load_dataset

    trained = from_pretrained(latest_checkpoint(latent_run))
    fresh = DiffusionModel(trained.config)
    clips = load_dataset(DataConfig(name="moving-digits", image_size=16), "test").batch(torch.arange(8))["videos"]
    with torch.no_grad():
        errors = [(model.from_latents(model.to_latents(clips)) - clips).abs().mean().item()
                  for model in (fresh, trained)]
    assert errors[1] < 0.6 * errors[0], errors


def test_aigckit_eval_on_a_latent_run_also_scores_the_real_clips_through_its_autoencoder(latent_run, tmp_path,
                                                                                          monkeypatch):
    monkeypatch.setattr(video, "EVALUATOR_STEPS", 5)  # a barely trained evaluator: this test checks the wiring
    scores = evaluate_run(latent_run, n=6, steps=2, batch_size=4, cache_dir=tmp_path / "cache")["video"]
    assert scores["autoencoded"]["clips"] == 6
    assert scores["autoencoded"]["fvd_style"] != scores["real_held_out"]["fvd_style"]  # they went through it


def test_a_latent_run_stopped_in_either_stage_and_resumed_equals_an_unbroken_one(tmp_path):
    config = _latent_video_config(max_steps=AUTOENCODER_STEPS + 4, checkpoint_every=2, log_every=2)
    Trainer(config, tmp_path / "unbroken", show_progress=False).fit()
    for stop in (AUTOENCODER_STEPS - 2, AUTOENCODER_STEPS + 2):
        run = tmp_path / f"broken-{stop}"
        with pytest.raises(KeyboardInterrupt):
            Trainer(config, run, show_progress=False, extra_callbacks=[StopAt(stop)]).fit()
        Trainer(config, run, resume=True, show_progress=False).fit()
        for name in ("model", "ema", "training_state"):
            expected = load_file(latest_checkpoint(tmp_path / "unbroken") / f"{name}.safetensors")
            actual = load_file(latest_checkpoint(run) / f"{name}.safetensors")
            assert expected.keys() == actual.keys()
            for key in expected:
                assert torch.equal(expected[key], actual[key]), f"stopped at {stop}: {name}/{key}"


def test_a_latent_one_frame_run_starts_a_latent_video_model_with_its_own_autoencoder(tmp_path):
    # the image layers first on single frames, in latent space (Video LDM's order): the video run takes the frames
    # run's autoencoder, whose latents those image layers learnt, and trains no autoencoder of its own
    Trainer(_latent_video_config(data="moving-digits-frames", max_steps=AUTOENCODER_STEPS + 5), tmp_path / "frames",
            show_progress=False).fit()
    source = from_pretrained(latest_checkpoint(tmp_path / "frames"))
    config = _latent_video_config({"init_from": str(tmp_path / "frames"), "autoencoder_steps": 0}, max_steps=6)
    trainer = Trainer(config, tmp_path / "video", show_progress=False)
    theirs = source.autoencoder.state_dict()
    for name, weight in trainer.model.autoencoder.state_dict().items():
        assert torch.equal(weight, theirs[name]), name
    unet = source.unet.state_dict()
    for name, weight in trainer.model.unet.state_dict().items():
        assert torch.equal(weight, unet[name]) if name in unet else "_time" in name, name
    trainer.fit()
    with open(tmp_path / "video" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and all(row["loss"] and not row.get("autoencoder_l1") for row in rows)  # the UNet from step 1
    trained = from_pretrained(latest_checkpoint(tmp_path / "video"))
    for name, weight in trained.autoencoder.state_dict().items():
        assert torch.equal(weight, theirs[name]), name  # frozen throughout, in the average too


def test_init_from_refuses_to_mix_pixels_and_latents_or_two_autoencoders_in_one_line(tmp_path):
    Trainer(_latent_video_config(data="moving-digits-frames", max_steps=1), tmp_path / "latent",
            show_progress=False).fit()
    with pytest.raises(AigcError, match="model.autoencoder_steps=0 to take that autoencoder") as error:
        Trainer(_latent_video_config({"init_from": str(tmp_path / "latent")}), tmp_path / "a", show_progress=False)
    assert "\n" not in str(error.value)
    pixels = _latent_video_config({"init_from": str(tmp_path / "latent"), "latent_channels": None})
    with pytest.raises(AigcError, match="denoises latents and this model does not"):
        Trainer(pixels, tmp_path / "b", show_progress=False)
    wider = _latent_video_config({"init_from": str(tmp_path / "latent"), "autoencoder_steps": 0,
                                  "autoencoder_width": 32})
    with pytest.raises(AigcError, match="autoencoder_width=16; set model.latent_channels=4 model.autoencoder_width=16"):
        Trainer(wider, tmp_path / "c", show_progress=False)
    assert not any((tmp_path / name).exists() for name in "abc")  # refused before anything was written
    with pytest.raises(Exception, match="autoencoder_steps.*0 only with model.init_from a latent run"):
        DiffusionConfig(image_size=16, frames=4, latent_channels=4, autoencoder_steps=0)


def test_a_latent_config_is_refused_in_one_line_where_it_cannot_work():
    with pytest.raises(Exception, match="built for video models here") as error:
        DiffusionConfig(image_size=16, latent_channels=3)
    assert "\n" not in str(error.value)
    with pytest.raises(Exception, match="divisible by 8 .* latents 4x smaller"):
        DiffusionConfig(image_size=12, frames=4, latent_channels=3, channel_mults=(1, 2))


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_samplers_keep_a_latent_models_x0_beyond_one_and_clip_a_pixel_models(sampler):
    # normalised latents have unit std, so a third of their values lie beyond [-1, 1]; pixels do not
    latent = DiffusionModel(DiffusionConfig(image_size=16, channels=1, frames=4, latent_channels=4,
                                            channel_mults=(1, 2), prediction="v", num_train_steps=100))
    pixel = DiffusionModel(DiffusionConfig(image_size=16, channels=1, frames=4, channel_mults=(1, 2),
                                           prediction="v", num_train_steps=100))
    for model, expected in ((latent, 3.0), (pixel, 1.0)):
        scheduler = make_sampler(model, sampler)
        scheduler.set_timesteps(10)
        x = torch.randn(2, 4, 4, 4, 4, generator=torch.Generator().manual_seed(0))
        for t in scheduler.timesteps.tolist():
            a = model.alphas_cumprod[t]
            # the output whose x0 estimate is 3 everywhere: v = sqrt(a) eps - sqrt(1 - a) x0 with the eps it implies
            eps = (x - a.sqrt() * 3.0) / (1 - a).sqrt()
            output = training_target("v", torch.full_like(x, 3.0), eps, a)
            x = scheduler.step(output, t, x, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(x, torch.full_like(x, expected), atol=1e-3, rtol=0)
