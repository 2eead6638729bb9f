import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aigckit import load
from aigckit.family import FAMILIES
from aigckit.models.diffusion import DiffusionConfig
from aigckit.metrics_log import read_metrics

FAMILY = FAMILIES.get("diffusion")


def conditional_model(prediction="eps"):
    torch.manual_seed(0)
    model = FAMILY.build(DiffusionConfig(image_size=8, channels=1, num_classes=10, conditional=True,
                                         base_channels=8, channel_mults=(1, 2), prediction=prediction))
    for p in model.parameters():  # zero-initialised layers would make every output 0: randomise them all
        torch.nn.init.normal_(p, 0, 0.2)
    return model.eval()


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 999), st.integers(0, 9))
def test_guidance_1_is_the_conditional_model_and_0_the_unconditional(t, label):
    model = conditional_model()
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(t))
    ts, labels = torch.full((2,), t), torch.full((2,), label)
    with torch.no_grad():
        conditional = model.unet(x, ts, labels)
        unconditional = model.unet(x, ts, torch.full((2,), 10))
        assert torch.allclose(model.guided_output(x, ts, labels, guidance=1.0), conditional, atol=1e-6)
        assert torch.allclose(model.guided_output(x, ts, labels, guidance=0.0), unconditional, atol=1e-6)
        assert not torch.allclose(conditional, unconditional, atol=1e-3)  # the label does matter
        g3 = model.guided_output(x, ts, labels, guidance=3.0)
        assert torch.allclose(g3, unconditional + 3 * (conditional - unconditional), atol=1e-5)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm-solver++"])
def test_every_sampler_runs_on_one_network_with_any_step_count(sampler):
    model = conditional_model("v")
    for steps in (1, 3, 7):
        images = FAMILY.sample(model, 4, sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(0))
        assert images.shape == (4, 1, 8, 8) and torch.isfinite(images).all()


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_ddim_eta_0_is_deterministic_for_a_seed(seed):
    model = conditional_model()
    run = lambda s: FAMILY.sample(model, 3, sampler="ddim", steps=5, eta=0.0,  # noqa: E731
                                  generator=torch.Generator().manual_seed(s))
    assert torch.equal(run(seed), run(seed))
    assert not torch.equal(run(seed), run(seed + 1))


def test_trajectory_records_every_step():
    trajectory = []
    FAMILY.sample(conditional_model(), 2, steps=4, trajectory=trajectory, generator=torch.Generator().manual_seed(0))
    assert [t for t, _ in trajectory] == [999, 749, 499, 249]


@pytest.mark.slow
def test_conditional_diffusion_learns_the_digits(trained_diffusion, digit_classifier):
    losses = [row["loss"] for row in read_metrics(trained_diffusion / "metrics.csv")]
    assert losses[-1] < 0.5 * losses[0]
    model = load(trained_diffusion).model
    labels = torch.arange(10).repeat_interleave(20)
    images = FAMILY.sample(model, 200, labels=labels, steps=20, generator=torch.Generator().manual_seed(0))
    accuracy = float((torch.as_tensor(digit_classifier(images)) == labels).float().mean())
    assert accuracy > 0.5, f"the classifier recognised only {accuracy:.0%} of conditional samples (chance: 10%)"


@pytest.mark.parametrize("base, mults", [(4, (1,)), (12, (1, 3)), (48, (1, 2, 3))])
def test_unet_builds_for_any_width_and_keeps_the_shape(base, mults):
    model = FAMILY.build(DiffusionConfig(image_size=8, channels=3, num_classes=0, base_channels=base,
                                         channel_mults=mults))
    x = torch.randn(2, 3, 8, 8)
    assert model.unet(x, torch.tensor([0, 999]), model.null_labels(2, x.device)).shape == x.shape


@pytest.mark.slow
def test_dpm_solver_20_steps_lands_where_ddim_50_does(trained_diffusion):
    """Both solve the same probability-flow ODE from the same noise, so a trained model gives ~the same digits."""
    model = load(trained_diffusion).model
    labels = torch.arange(10).repeat_interleave(3)
    run = lambda sampler, steps: FAMILY.sample(model, 30, labels=labels, sampler=sampler, steps=steps,  # noqa: E731
                                               generator=torch.Generator().manual_seed(0))
    assert (run("dpm-solver++", 20) - run("ddim", 50)).abs().mean() < 0.2  # 0.46 when DPM-Solver++ overshoots


def unconditional_model():
    return FAMILY.build(DiffusionConfig(image_size=8, channels=1, num_classes=10, base_channels=8,
                                        channel_mults=(1, 2), num_train_steps=50, sampling_steps=4)).eval()


@pytest.mark.parametrize("options, message", [
    ({"steps": 0}, "steps must be a whole number in 1..50"),  # once silently the config's default
    ({"steps": 51}, "steps must be a whole number in 1..50"),
    ({"sampler": "euler"}, "unknown sampler 'euler'; choose one of ddpm, ddim, dpm-solver++"),
    ({"guidance": 2.0}, "guidance needs a conditional model"),  # once silently ignored
    ({"eta": 0.5}, "eta applies to the ddim sampler only, not dpm-solver++"),  # once silently ignored
    ({"sampler": "ddpm", "eta": 0.0}, "eta applies to the ddim sampler only, not ddpm"),
    ({"labels": torch.tensor([1, 2])}, "unconditional and takes no labels"),  # once silently ignored
])
def test_sampling_options_the_model_cannot_serve_are_refused(options, message):
    from aigckit.errors import AigcError

    with pytest.raises(AigcError, match=message):
        FAMILY.sample(unconditional_model(), 2, **options)


@pytest.mark.parametrize("options, message", [
    ({"guidance": -1.0}, "guidance must be a number >= 0"),
    ({"labels": torch.tensor([3, 10])}, r"labels must be in 0..9, got \[3, 10\]"),
])
def test_a_conditional_model_refuses_bad_guidance_and_labels(options, message):
    from aigckit.errors import AigcError

    with pytest.raises(AigcError, match=message):
        FAMILY.sample(conditional_model(), 2, **options)


def test_inpaint_refuses_resampling_that_cannot_happen_and_guidance_without_a_label():
    from aigckit.errors import AigcError

    images, known = torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
    with pytest.raises(AigcError, match=r"jump_length \(5\) must be below steps \(5\)"):
        FAMILY.inpaint(conditional_model(), images, known, steps=5)
    with pytest.raises(AigcError, match="give the image's label with it"):
        FAMILY.inpaint(conditional_model(), images, known, steps=10, guidance=2.0)


@pytest.mark.parametrize("field, value", [("schedule", "cosin"), ("prediction", "epsilon"), ("sampler", "ddmi"),
                                          ("noise_sampling", "normal")])
def test_the_config_refuses_unknown_names(field, value):
    from aigckit.errors import ConfigError

    with pytest.raises(ConfigError, match=f"{field}: unknown .*{value!r}; known: "):
        DiffusionConfig(**{field: value})


@pytest.mark.parametrize("prediction", ["eps", "v", "x0", "edm"])
def test_min_snr_weighted_loss_is_min_snr_times_the_x0_error_for_every_prediction(prediction):
    """Min-SNR-gamma (Hang et al. 2023) written in x0 terms, checked against our own x0 conversion."""
    from aigckit.models.diffusion.schedules import (alphas_cumprod, edm_scalings, edm_target, min_snr_weights,
                                                    to_x0_and_eps, training_target)

    torch.manual_seed(0)
    a = alphas_cumprod("cosine", 1000)[torch.tensor([0, 5, 100, 500, 900, 999])].double().view(-1, 1, 1, 1)
    x0, eps, output = torch.randn(3, 6, 1, 4, 4, dtype=torch.float64).unbind(0)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    if prediction == "edm":
        target = edm_target(x0, eps, a, 0.5)
        _, c_skip, c_out = edm_scalings(a, 0.5)
        x0_hat = c_skip * x_t + c_out * output
    else:
        target = training_target(prediction, x0, eps, a)
        x0_hat, _ = to_x0_and_eps(prediction, output, x_t, a)
    weighted = min_snr_weights(prediction, a.flatten(), 5.0, 0.5) * (output - target).square().flatten(1).sum(1)
    snr = (a / (1 - a)).flatten()
    torch.testing.assert_close(weighted, snr.clamp(max=5.0) * (x0 - x0_hat).square().flatten(1).sum(1))
    assert (snr > 5).any() and (snr < 5).any()  # both sides of the clip are exercised


def test_edm_preconditioning_recovers_x0_and_is_v_prediction_at_unit_sigma_data():
    """Karras et al. 2022's c_skip, c_out, c_in in VP terms: the target maps back to x0 exactly, the input has
    unit variance for data of std sigma_data, and sigma_data = 1 is v-prediction with F = -v."""
    from aigckit.models.diffusion.schedules import alphas_cumprod, edm_scalings, edm_target, training_target

    g = torch.Generator().manual_seed(0)
    a = alphas_cumprod("cosine", 1000)[torch.tensor([0, 10, 300, 700, 999])].double().view(-1, 1, 1, 1)
    x0 = 0.5 * torch.randn(5, 1, 64, 64, generator=g, dtype=torch.float64)  # data of std 0.5
    eps = torch.randn(5, 1, 64, 64, generator=g, dtype=torch.float64)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    c_in, c_skip, c_out = edm_scalings(a, 0.5)
    torch.testing.assert_close(c_skip * x_t + c_out * edm_target(x0, eps, a, 0.5), x0)
    torch.testing.assert_close((c_in * x_t).flatten(1).std(1), torch.ones(5, dtype=torch.float64), atol=0.03, rtol=0)
    torch.testing.assert_close(edm_target(x0, eps, a, 0.5).flatten(1).std(1), torch.ones(5, dtype=torch.float64),
                               atol=0.03, rtol=0)
    c_in, c_skip, c_out = edm_scalings(a, 1.0)
    torch.testing.assert_close(c_in, torch.ones_like(a))
    torch.testing.assert_close((c_skip, c_out), (a.sqrt(), (1 - a).sqrt()))
    torch.testing.assert_close(edm_target(x0, eps, a, 1.0), -training_target("v", x0, eps, a))


def test_lognormal_timesteps_are_the_nearest_in_log_sigma():
    from aigckit.models.diffusion.schedules import alphas_cumprod, lognormal_timesteps

    a = alphas_cumprod("cosine", 1000)
    draws = torch.randn(2000, generator=torch.Generator().manual_seed(0)) * 3
    t = lognormal_timesteps(draws, a, -1.2, 1.2)
    log_sigmas = 0.5 * torch.log((1 - a) / a)
    nearest = (log_sigmas[None] - (-1.2 + 1.2 * draws)[:, None]).abs().argmin(1)
    assert torch.equal(t, nearest)
    assert t.min() == 0 and t.max() == 999  # the tails reach both ends of the schedule


def test_an_edm_run_with_lognormal_noise_trains_and_samples(tmp_path):
    from aigckit.training import Trainer
    from helpers import tiny_config

    config = tiny_config({"name": "diffusion", "prediction": "edm", "noise_sampling": "lognormal",
                          "conditional": True, "guidance": 2.0}, train={"max_steps": 30, "log_every": 10})
    Trainer(config, tmp_path, show_progress=False).fit()
    losses = [row["loss"] for row in read_metrics(tmp_path / "metrics.csv")]
    assert losses[-1] < losses[0]
    pipeline = load(tmp_path)
    for sampler in ("ddpm", "ddim", "dpm-solver++"):
        images = pipeline.sample(4, labels=[1, 2, 3, 4], seed=0, sampler=sampler, steps=5)
        assert torch.isfinite(images).all()
    # guidance left out is the config's 2, not 1
    default = pipeline.sample(4, labels=[1, 2, 3, 4], seed=0, steps=5)
    assert torch.equal(default, pipeline.sample(4, labels=[1, 2, 3, 4], seed=0, steps=5, guidance=2.0))
    assert not torch.equal(default, pipeline.sample(4, labels=[1, 2, 3, 4], seed=0, steps=5, guidance=1.0))


def test_guidance_in_the_config_needs_a_conditional_model():
    from aigckit.errors import ConfigError

    with pytest.raises(ConfigError, match="guidance needs a conditional model"):
        DiffusionConfig(guidance=3.0)


def test_a_min_snr_run_trains(tmp_path):
    from aigckit.training import Trainer
    from helpers import tiny_config

    config = tiny_config({"name": "diffusion", "min_snr_gamma": 5.0}, train={"max_steps": 30, "log_every": 10})
    Trainer(config, tmp_path, show_progress=False).fit()
    losses = [row["loss"] for row in read_metrics(tmp_path / "metrics.csv")]
    assert losses[-1] < losses[0]


def test_a_patch_folded_unet_keeps_the_image_shape_and_trains(tmp_path):
    """patch_size 2: the UNet runs at half resolution on 4x the channels and folds back to the image's shape."""
    from aigckit.models.diffusion.unet import UNet
    from aigckit.training import Trainer
    from helpers import tiny_config

    unet = UNet(DiffusionConfig(image_size=16, channels=3, base_channels=8, channel_mults=(1, 2), patch_size=2))
    assert unet.conv_in.in_channels == 12 and unet.out[-1].out_channels == 12
    assert unet(torch.randn(2, 3, 16, 16), torch.tensor([5, 500])).shape == (2, 3, 16, 16)
    config = tiny_config({"name": "diffusion", "patch_size": 2, "prediction": "v"},
                         train={"max_steps": 30, "log_every": 10})
    Trainer(config, tmp_path, show_progress=False).fit()
    losses = [row["loss"] for row in read_metrics(tmp_path / "metrics.csv")]
    assert losses[-1] < losses[0]


def test_patch_size_must_divide_the_image_with_its_levels():
    from aigckit.errors import ConfigError

    with pytest.raises(ConfigError, match="divisible by 8 for 3 UNet levels on patches of 2"):
        DiffusionConfig(image_size=28, channel_mults=(1, 2, 2), patch_size=2)
