import math

import torch

from aigckit.evaluation.metrics import psnr, ssim


def test_psnr_of_a_known_error():
    truth = torch.zeros(1, 1, 4, 4)
    estimate = truth + 0.2  # MSE 0.04 with peak 2 (range [-1, 1]): 10 log10(4 / 0.04) = 20 dB
    assert math.isclose(psnr(estimate, truth).item(), 20.0, rel_tol=1e-5)
    region = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    region[..., :2, :] = True
    estimate[..., 2:, :] = 5.0  # errors outside the region do not count
    assert math.isclose(psnr(estimate, truth, region).item(), 20.0, rel_tol=1e-5)


def test_ssim_is_one_for_identical_images_and_lower_for_noise():
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-5)
    noisy = x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert torch.all(ssim(noisy, x) < 0.9)
