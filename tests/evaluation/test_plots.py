import pytest
import torch
from PIL import Image

from aigckit.errors import AigcError
from aigckit.evaluation import plot_latent_scatter, plot_manifold, plot_trajectory
from aigckit.family import FAMILIES
from aigckit.models.diffusion import DiffusionConfig
from aigckit.models.vae import VAEConfig
from aigckit.pipelines import ImagePipeline


def pipeline(family, config):
    torch.manual_seed(0)
    return ImagePipeline(FAMILIES.get(family).build(config).eval(), FAMILIES.get(family))


def test_latent_plots_of_a_2d_vae(tmp_path):
    vae = pipeline("vae", VAEConfig(name="mlp-vae", image_size=8, channels=1, num_classes=10, latent_dim=2))
    images, labels = torch.rand(30, 1, 8, 8) * 2 - 1, torch.arange(30) % 10
    assert plot_latent_scatter(vae, images, labels, tmp_path / "scatter.png").stat().st_size > 0
    manifold = Image.open(plot_manifold(vae, tmp_path / "manifold.png", n=5))
    assert manifold.size == (6 * (5 * (8 + 2) + 2),) * 2  # 5x5 cells of 8 px + 2 px borders, enlarged 6x
    wide = pipeline("vae", VAEConfig(name="mlp-vae", image_size=8, channels=1, num_classes=10, latent_dim=3))
    with pytest.raises(AigcError, match="latent_dim=2"):
        plot_manifold(wide, tmp_path / "no.png")


def test_trajectory_strip_has_one_row_per_image_and_a_column_per_level(tmp_path):
    diffusion = pipeline("diffusion", DiffusionConfig(image_size=8, channels=1, num_classes=0, base_channels=8,
                                                      channel_mults=(1, 2), num_train_steps=50))
    trajectory: list = []
    final = diffusion.sample(4, sampler="ddpm", steps=50, trajectory=trajectory, seed=0)
    assert [t for t, _ in trajectory] == list(range(49, -1, -1))  # from pure noise down to t = 0
    strip = Image.open(plot_trajectory(trajectory, final, tmp_path / "t.png", rows=[0, 1, 3], columns=6))
    assert strip.size == (6 * (6 * 10 + 2), 6 * (3 * 10 + 2))  # cells of 8 px + 2 px borders, enlarged 6x
