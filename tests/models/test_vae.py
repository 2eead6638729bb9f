import math

import pytest
import torch

from aigckit.config import DataConfig
from aigckit.data import load_dataset
from aigckit.family import FAMILIES
from aigckit.models.vae import VAEConfig
from aigckit.training import Trainer
from helpers import tiny_config

FAMILY = FAMILIES.get("vae")


def validation_bounds(model, k=32):
    data = load_dataset(DataConfig(name="digits", image_size=8), "val")
    labels = data.labels if model.config.conditional else None
    bounds = FAMILY.log_likelihood(model, data.images, labels, k=k, generator=torch.Generator().manual_seed(0))
    return {name: value.mean().item() for name, value in bounds.items()}


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


def test_gaussian_likelihood_is_the_normal_density():
    model = FAMILY.build(VAEConfig(name="mlp-vae", image_size=2, channels=1, num_classes=0, likelihood="gaussian"))
    with torch.no_grad():
        model.log_sigma.fill_(math.log(0.5))
    x = torch.tensor([[[[-1.0, 0.0], [0.5, 1.0]]]])
    mean = torch.full_like(x, 0.25)
    expected = torch.distributions.Normal(mean, 0.5).log_prob((x + 1) / 2).sum()
    assert torch.allclose(model.log_px_given_z(x, mean), expected[None])


def test_reconstruct_and_interpolate_shapes_and_ends():
    torch.manual_seed(0)
    model = FAMILY.build(VAEConfig(name="conv-vae", image_size=8, channels=1, num_classes=10, conditional=True))
    images = load_dataset(DataConfig(name="digits", image_size=8), "val").images[:3]
    assert FAMILY.reconstruct(model, images, torch.tensor([0, 1, 2])).shape == (3, 1, 8, 8)
    line = FAMILY.interpolate(model, images[0], images[1], steps=5, labels=torch.tensor([4, 4]))
    assert line.shape == (5, 1, 8, 8)
    ends = FAMILY.reconstruct(model, images[:2], torch.tensor([4, 4]))
    assert torch.allclose(line[0], ends[0], atol=1e-6) and torch.allclose(line[-1], ends[1], atol=1e-6)
