import math

import pytest
import torch

from aigckit.config import DataConfig
from aigckit.data import load_dataset
from aigckit.family import FAMILIES
from aigckit.models.vae import VAEConfig
from aigckit.models.vae.likelihoods import discretised_gaussian_log_prob
from aigckit.training import Trainer
from helpers import tiny_config

FAMILY = FAMILIES.get("vae")


def validation_bounds(model, k=32):
    data = load_dataset(DataConfig(name="digits", image_size=8), "val")
    labels = data.labels if model.config.conditional else None
    bounds = FAMILY.log_likelihood(model, data.images, labels, k=k, generator=torch.Generator().manual_seed(0))
    return {name: value.mean().item() for name, value in bounds.items() if isinstance(value, torch.Tensor)}


@pytest.mark.parametrize("name", ["mlp-vae", "conv-vae"])
def test_the_validation_elbo_improves_and_iwae_bounds_it(name, tmp_path):
    config = tiny_config({"name": name, "preset": "small"}, train={"max_steps": 300, "batch_size": 64,
                                                                   "use_ema": False})
    trainer = Trainer(config, tmp_path, show_progress=False)
    before = validation_bounds(trainer.model)
    trainer.fit()
    after = validation_bounds(trainer.model)
    assert after["elbo"] > before["elbo"] + 5, (before, after)  # nats per image
    assert after["iwae"] >= after["elbo"]


def test_iwae_is_never_below_the_elbo_of_its_own_samples_and_tightens_with_k():
    torch.manual_seed(0)
    model = FAMILY.build(VAEConfig(name="mlp-vae", image_size=8, channels=1, num_classes=10, latent_dim=4))
    images = load_dataset(DataConfig(name="digits", image_size=8), "val").images[:64]
    g = torch.Generator().manual_seed(1)
    bounds = FAMILY.log_likelihood(model, images, k=16, generator=g)
    assert torch.all(bounds["iwae"] >= bounds["elbo"] - 1e-4)
    k1 = FAMILY.log_likelihood(model, images, k=1, generator=torch.Generator().manual_seed(2))["iwae"].mean()
    k64 = FAMILY.log_likelihood(model, images, k=64, generator=torch.Generator().manual_seed(2))["iwae"].mean()
    assert k64 > k1


def test_the_discretised_gaussian_gives_the_256_levels_probabilities_that_sum_to_one():
    levels = torch.arange(256, dtype=torch.float32) / 127.5 - 1  # every 8-bit level of one pixel, in [-1, 1]
    for mean, sigma in [(0.3, 0.05), (0.0, 1e-4), (1.2, 0.4), (0.5, 7.0), (-0.2, 0.006), (0.5013, 1e-3)]:
        log_p = discretised_gaussian_log_prob(levels, torch.full_like(levels, mean), torch.tensor(math.log(sigma)))
        assert torch.isfinite(log_p).all()
        assert abs(log_p.exp().sum().item() - 1) < 1e-5, (mean, sigma)
    # a middle level is the Gaussian's mass on its bin, [(v - 0.5)/255, (v + 0.5)/255] on the [0, 1] scale
    normal = torch.distributions.Normal(torch.tensor(0.4, dtype=torch.float64), 0.05)
    expected = normal.cdf(torch.tensor(100.5 / 255)) - normal.cdf(torch.tensor(99.5 / 255))
    log_p = discretised_gaussian_log_prob(levels[100:101], torch.tensor([0.4]), torch.tensor(math.log(0.05)))
    assert log_p.exp().item() == pytest.approx(expected.item(), rel=1e-4)
    # values off the grid are snapped to the nearest level: P(x) is a probability of the 8-bit image
    assert torch.equal(discretised_gaussian_log_prob(levels[100:101] + 0.003, torch.tensor([0.4]),
                                                     torch.tensor(math.log(0.05))), log_p)


def test_the_gaussian_likelihood_is_the_discretised_one_and_keeps_gradients_finite():
    model = FAMILY.build(VAEConfig(name="mlp-vae", image_size=2, channels=1, num_classes=0, likelihood="gaussian"))
    with torch.no_grad():
        model.log_sigma.fill_(math.log(0.01))
    x = torch.tensor([[[[-1.0, 0.0], [0.5, 1.0]]]])
    mean = torch.tensor([[[[0.2, 0.5], [0.74, 3.0]]]], requires_grad=True)  # one mean far outside [0, 1]
    log_px = model.log_px_given_z(x, mean)
    expected = discretised_gaussian_log_prob(x, mean, model.log_sigma).sum()
    assert torch.allclose(log_px, expected[None]) and log_px.item() < 0
    log_px.sum().backward()
    assert torch.isfinite(mean.grad).all() and torch.isfinite(model.log_sigma.grad)


def test_bits_per_dim_only_from_the_discretised_likelihood():
    images = load_dataset(DataConfig(name="digits", image_size=8), "val").images[:32]
    torch.manual_seed(0)
    bernoulli = FAMILY.build(VAEConfig(name="mlp-vae", image_size=8, channels=1, num_classes=0))
    result = FAMILY.log_likelihood(bernoulli, images, k=4, generator=torch.Generator().manual_seed(0))
    assert "bits_per_dim" not in result and result["discretisation"] is None
    assert "not a probability" in result["pixel_model"] and torch.isfinite(result["nats"]).all()
    gaussian = FAMILY.build(VAEConfig(name="mlp-vae", image_size=8, channels=1, num_classes=0, likelihood="gaussian"))
    result = FAMILY.log_likelihood(gaussian, images, k=4, generator=torch.Generator().manual_seed(0))
    assert result["discretisation"] == "8-bit" and result["dims"] == 64 and result["bound"].startswith("IWAE")
    assert torch.isfinite(result["bits_per_dim"]).all() and (result["bits_per_dim"] > 0).all()
    assert torch.allclose(result["bits_per_dim"], result["nats"] / (64 * math.log(2)))
    assert torch.allclose(result["nats"], -result["iwae"])


def test_a_gaussian_vae_learns_and_its_bits_per_dim_fall(tmp_path):
    config = tiny_config({"name": "mlp-vae", "preset": "small", "likelihood": "gaussian"},
                         train={"max_steps": 300, "batch_size": 64, "use_ema": False, "log_every": 50})
    trainer = Trainer(config, tmp_path, show_progress=False)
    before = validation_bounds(trainer.model, k=8)
    trainer.fit()
    after = validation_bounds(trainer.model, k=8)
    assert math.isfinite(after["bits_per_dim"]) and 0 < after["bits_per_dim"] < before["bits_per_dim"] - 0.4, \
        (before, after)
    assert trainer.model.log_sigma.exp() < 1  # the learned scale shrinks towards the reconstruction error


def test_reconstruct_and_interpolate_shapes_and_ends():
    torch.manual_seed(0)
    model = FAMILY.build(VAEConfig(name="conv-vae", image_size=8, channels=1, num_classes=10, conditional=True))
    images = load_dataset(DataConfig(name="digits", image_size=8), "val").images[:3]
    assert FAMILY.reconstruct(model, images, torch.tensor([0, 1, 2])).shape == (3, 1, 8, 8)
    line = FAMILY.interpolate(model, images[0], images[1], steps=5, labels=torch.tensor([4, 4]))
    assert line.shape == (5, 1, 8, 8)
    ends = FAMILY.reconstruct(model, images[:2], torch.tensor([4, 4]))
    assert torch.allclose(line[0], ends[0], atol=1e-6) and torch.allclose(line[-1], ends[1], atol=1e-6)
