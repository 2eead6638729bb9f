import math

import torch

from aigckit import load
from aigckit.config import DataConfig
from aigckit.data import load_dataset
from aigckit.data.transforms import quantise_8bit
from aigckit.family import FAMILIES
from aigckit.models.diffusion import DiffusionConfig
from aigckit.models.diffusion.likelihood import discretised_gaussian_log_likelihood

FAMILY = FAMILIES.get("diffusion")


def test_the_bound_of_an_untrained_model_is_finite_and_the_subset_estimate_agrees():
    torch.manual_seed(0)
    model = FAMILY.build(DiffusionConfig(image_size=8, channels=1, num_classes=0, base_channels=8,
                                         channel_mults=(1, 2), num_train_steps=100)).eval()
    images = load_dataset(DataConfig(name="digits", image_size=8), "val").images[:16]
    full = FAMILY.log_likelihood(model, images, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(full["bits_per_dim"]).all() and (full["bits_per_dim"] > 0).all()
    assert "all 99 denoising terms" in full["bound"]  # T - 1 <= DEFAULT_TIMESTEPS: the whole sum
    assert torch.allclose(full["nats"], full["prior_nats"] + full["denoising_nats"] + full["decoder_nats"])
    assert torch.allclose(full["bits_per_dim"], full["nats"] / (64 * math.log(2)))
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
    # the x0 estimate is clipped to [-1, 1] as the sampler clips it, which bounds an untrained model's errors too:
    # after 500 steps the trained bound is about 10 % lower (15.9 against 17.7 bits/dim, measured)
    assert bound(trained) < 0.95 * bound(untrained)


def test_the_decoder_term_is_ho_et_als_discretised_gaussian_over_256_levels():
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1  # the 8-bit levels of one pixel in [-1, 1]
    for mean, std in [(0.1, 0.01), (-0.9, 0.003), (0.95, 0.2), (0.0, 2.0)]:
        log_p = discretised_gaussian_log_likelihood(levels, torch.full_like(levels, mean), torch.tensor(math.log(std)))
        assert abs(log_p.exp().sum().item() - 1) < 1e-5, (mean, std)
    torch.manual_seed(0)
    model = FAMILY.build(DiffusionConfig(image_size=8, channels=1, num_classes=0, base_channels=8,
                                         channel_mults=(1, 2), num_train_steps=1000)).eval()
    images = load_dataset(DataConfig(name="digits", image_size=8), "val").images[:4]
    bound = FAMILY.log_likelihood(model, images, generator=torch.Generator().manual_seed(0))
    assert bound["discretisation"] == "8-bit" and "discretised Gaussian over the 256 levels" in bound["pixel_model"]
    assert "100 of the 999 denoising terms" in bound["bound"]
    # the bound is on the 8-bit image: the same for the image snapped to 8 bits and for one less than half a level
    # away from that
    snapped = quantise_8bit(images)
    for image in (snapped, snapped + 0.9 / 255):
        again = FAMILY.log_likelihood(model, image, generator=torch.Generator().manual_seed(0))
        assert torch.equal(again["nats"], bound["nats"])
