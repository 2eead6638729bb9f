import torch

from aigckit import load
from aigckit.config import DataConfig
from aigckit.data import load_dataset
from aigckit.family import FAMILIES
from aigckit.models.diffusion import DiffusionConfig

FAMILY = FAMILIES.get("diffusion")


def test_the_bound_of_an_untrained_model_is_finite_and_the_subset_estimate_agrees():
    torch.manual_seed(0)
    model = FAMILY.build(DiffusionConfig(image_size=8, channels=1, num_classes=0, base_channels=8,
                                         channel_mults=(1, 2), num_train_steps=100)).eval()
    images = load_dataset(DataConfig(name="digits", image_size=8), "val").images[:16]
    full = FAMILY.log_likelihood(model, images, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(full["bits_per_dim"]).all() and (full["bits_per_dim"] > 0).all()
    estimates = [FAMILY.log_likelihood(model, images, timesteps=20, generator=torch.Generator().manual_seed(s))
                 ["bits_per_dim"].mean() for s in range(5)]
    assert abs(torch.stack(estimates).mean() - full["bits_per_dim"].mean()) < 0.1 * full["bits_per_dim"].mean()


def test_training_lowers_the_validation_bound(trained_diffusion):
    trained = load(trained_diffusion).model
    untrained = FAMILY.build(trained.config).eval()
    data = load_dataset(DataConfig(name="digits", image_size=8), "val")
    images, labels = data.images[:32], data.labels[:32]
    bound = lambda m: FAMILY.log_likelihood(m, images, labels, timesteps=50,  # noqa: E731
                                            generator=torch.Generator().manual_seed(0))["bits_per_dim"].mean()
    assert bound(trained) < 0.8 * bound(untrained)
