import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from aigckit.training.ema import EMA
from aigckit.training.schedule import lr_factor


@given(st.integers(0, 50), st.integers(51, 1000), st.sampled_from(["constant", "cosine", "linear"]))
def test_lr_factor_warms_up_then_decays_within_0_and_1(warmup, max_steps, schedule):
    factors = [lr_factor(s, warmup_steps=warmup, max_steps=max_steps, schedule=schedule) for s in range(max_steps)]
    assert all(0.0 <= f <= 1.0 for f in factors)
    assert factors[warmup:] == sorted(factors[warmup:], reverse=True)  # never rises after the warm-up
    if warmup:
        assert factors[:warmup] == sorted(factors[:warmup]) and math.isclose(factors[warmup - 1], 1.0)


def test_cosine_and_linear_reach_half_midway():
    assert lr_factor(50, warmup_steps=0, max_steps=100, schedule="cosine") == pytest.approx(0.5)
    assert lr_factor(50, warmup_steps=0, max_steps=100, schedule="linear") == pytest.approx(0.5)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_decay_ends_at_the_floor(schedule):
    factors = [lr_factor(s, warmup_steps=10, max_steps=100, schedule=schedule, floor=0.1) for s in range(101)]
    assert min(factors) == pytest.approx(0.1) and factors[-1] == pytest.approx(0.1)
    assert factors[55] == pytest.approx(0.55)  # halfway through the decay: halfway between 1 and the floor


def test_ema_is_the_exponential_average():
    live = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(live, decay=0.5)
    start = live.weight.item()
    with torch.no_grad():
        live.weight.fill_(start + 10.0)
    ema.update(live, step=1000)  # past the warm-up: decay 0.5
    assert ema.model.weight.item() == pytest.approx(start + 5.0)
    assert not ema.model.weight.requires_grad
