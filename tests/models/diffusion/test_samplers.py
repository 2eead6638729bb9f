"""Our schedules and sampler steps against diffusers' schedulers (a pinned test-only reference), to 1e-5."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aigckit.models.diffusion.samplers import DDIMSampler, DDPMSampler, DPMSolverSampler
from aigckit.models.diffusion.schedules import alphas_cumprod

diffusers = pytest.importorskip("diffusers")

T = 1000
SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
PREDICTIONS = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}


def reference(cls, schedule, prediction, **kwargs):
    return cls(num_train_timesteps=T, beta_schedule=SCHEDULES[schedule], prediction_type=PREDICTIONS[prediction],
               timestep_spacing="trailing", **kwargs)


def fake_model(x, t):
    """A deterministic stand-in for a network: any smooth function of (x_t, t)."""
    return 0.7 * torch.tanh(x) * math.cos(t / 300) + 0.1 * math.sin(t / 50)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_alpha_bar_matches_diffusers(schedule):
    theirs = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule=SCHEDULES[schedule]).alphas_cumprod
    assert torch.allclose(alphas_cumprod(schedule, T), theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("steps", [10, 1000])
def test_ddpm_posterior_and_step_match_diffusers(schedule, prediction, steps):
    theirs = reference(diffusers.DDPMScheduler, schedule, prediction, clip_sample=True, variance_type="fixed_small")
    ours = DDPMSampler(alphas_cumprod(schedule, T), prediction=prediction, clip_sample=True)
    theirs.set_timesteps(steps)
    ours.set_timesteps(steps)
    assert torch.equal(ours.timesteps, theirs.timesteps)
    x = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    for t in ours.timesteps.tolist()[:: max(1, steps // 10)] + [int(ours.timesteps[-1])]:
        output = fake_model(x, t)
        x0 = output.clamp(-1, 1)
        _, variance = ours.posterior(x0, x, t)
        if steps == T:
            assert torch.allclose(variance, theirs._get_variance(t), atol=1e-7, rtol=1e-5)
        expected = theirs.step(output, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        actual = ours.step(output, t, x, generator=torch.Generator().manual_seed(t))
        assert torch.allclose(actual, expected, atol=1e-5, rtol=0), t


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_steps_match_diffusers(schedule, prediction, eta):
    theirs = reference(diffusers.DDIMScheduler, schedule, prediction, clip_sample=True, set_alpha_to_one=True)
    ours = DDIMSampler(alphas_cumprod(schedule, T), prediction=prediction, eta=eta, clip_sample=True)
    theirs.set_timesteps(50)
    ours.set_timesteps(50)
    assert torch.equal(ours.timesteps, theirs.timesteps)
    x_ours = x_theirs = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    for t in ours.timesteps.tolist():
        x_theirs = theirs.step(fake_model(x_theirs, t), t, x_theirs, eta=eta, use_clipped_model_output=True,
                               generator=torch.Generator().manual_seed(t)).prev_sample
        x_ours = ours.step(fake_model(x_ours, t), t, x_ours, generator=torch.Generator().manual_seed(t))
        assert torch.allclose(x_ours, x_theirs, atol=1e-5, rtol=0), t


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("steps", [1, 2, 20])
def test_dpm_solver_pp_2m_trajectory_matches_diffusers(schedule, prediction, steps):
    theirs = reference(diffusers.DPMSolverMultistepScheduler, schedule, prediction, algorithm_type="dpmsolver++",
                       solver_order=2)
    ours = DPMSolverSampler(alphas_cumprod(schedule, T), prediction=prediction, clip_sample=False)
    theirs.set_timesteps(steps)
    ours.set_timesteps(steps)
    assert torch.equal(ours.timesteps, theirs.timesteps)
    x_ours = x_theirs = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    for t in ours.timesteps.tolist():
        x_theirs = theirs.step(fake_model(x_theirs, t), t, x_theirs).prev_sample
        x_ours = ours.step(fake_model(x_ours, t), t, x_ours)
        assert torch.allclose(x_ours, x_theirs, atol=1e-5, rtol=1e-5), t


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["linear", "cosine"]), st.integers(2, 2000))
def test_alpha_bar_is_decreasing_and_in_0_1(schedule, steps):
    a = alphas_cumprod(schedule, steps)
    assert torch.all(a > 0) and torch.all(a <= 1)
    assert torch.all(a[1:] < a[:-1])


SAMPLER_CLASSES = [DDPMSampler, DDIMSampler, DPMSolverSampler]


def test_unknown_schedule_and_prediction_are_refused_naming_the_known_ones():
    from aigckit.errors import AigcError
    from aigckit.models.diffusion.schedules import to_x0_and_eps, training_target

    with pytest.raises(AigcError, match="unknown noise schedule 'cosin'; known: linear, cosine"):
        alphas_cumprod("cosin", T)
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(AigcError, match="unknown prediction type 'epsilon'; known: eps, v, x0"):
        training_target("epsilon", x, x, torch.tensor(0.5))
    with pytest.raises(AigcError, match="unknown prediction type 'V'"):
        to_x0_and_eps("V", x, x, torch.tensor(0.5))
    for cls in SAMPLER_CLASSES:  # refused when the sampler is made, not halfway through sampling
        with pytest.raises(AigcError, match="unknown prediction type 'sample'"):
            cls(alphas_cumprod("linear", T), prediction="sample")


@pytest.mark.parametrize("steps", [0, -1, T + 1, 2.5])
@pytest.mark.parametrize("cls", SAMPLER_CLASSES)
def test_a_step_count_outside_1_to_T_is_refused(cls, steps):
    from aigckit.errors import AigcError

    with pytest.raises(AigcError, match=f"steps must be a whole number in 1..{T}"):
        cls(alphas_cumprod("cosine", T)).set_timesteps(steps)


@pytest.mark.parametrize("cls", SAMPLER_CLASSES)
@pytest.mark.parametrize("t", [500, -1, T, 10_000])
def test_a_timestep_not_in_the_schedule_is_refused(cls, t):
    sampler = cls(alphas_cumprod("cosine", T))
    sampler.set_timesteps(10)  # 999, 899, ..., 99: 500 is a valid training step but not one of these
    x = torch.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match=f"timestep {t} is not in this sampler's schedule"):
        sampler.step(fake_model(x, 0), t, x)


def test_dpm_solver_takes_its_position_from_t_and_refuses_a_step_out_of_order():
    sampler = DPMSolverSampler(alphas_cumprod("cosine", T), clip_sample=False)
    sampler.set_timesteps(5)
    ts = sampler.timesteps.tolist()

    def run():
        x = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
        for t in ts:
            x = sampler.step(fake_model(x, t), t, x)
        return x

    first = run()
    assert torch.equal(run(), first)  # a second trajectory restarts at ts[0]: no position left over from the first
    x = torch.randn(2, 1, 4, 4)
    sampler.step(fake_model(x, ts[0]), ts[0], x)
    with pytest.raises(ValueError, match=f"the step at t={ts[2]} needs the step at t={ts[1]} just before it"):
        sampler.step(fake_model(x, ts[2]), ts[2], x)  # skipping ts[1] would use the wrong history
    sampler.step(fake_model(x, ts[1]), ts[1], x)
    with pytest.raises(ValueError, match=f"needs the step at t={ts[0]}"):
        sampler.step(fake_model(x, ts[1]), ts[1], x)  # the same step twice


@pytest.mark.parametrize("eta", [-0.1, 1.5, float("nan")])
def test_ddim_refuses_eta_outside_0_1(eta):
    from aigckit.errors import AigcError

    with pytest.raises(AigcError, match="eta must be in"):
        DDIMSampler(alphas_cumprod("cosine", T), eta=eta)
