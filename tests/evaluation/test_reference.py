"""Our FID, KID, precision/recall, density/coverage and Inception port against independent implementations:
torchmetrics 1.9 (FID, KID), prdc 0.2 (the density/coverage authors' code) and torch-fidelity 0.4 (Inception,
through golden features made by tests/evaluation/golden/inception_golden.py)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from aigckit.evaluation.extractors import FIDInceptionV3
from aigckit.evaluation.metrics import FeatureStatistics, density_coverage, fid, kid, precision_recall

GOLDEN = Path(__file__).parent / "golden"


class Features(torch.nn.Module):
    """torchmetrics' feature-extractor slot, filled with the identity: the metrics see our feature arrays."""

    def __init__(self, dim):
        super().__init__()
        self.num_features = dim

    def forward(self, x):
        return x


def feature_sets(n_real, n_fake, dim, seed):
    """Two differently shaped Gaussian feature clouds (correlated, shifted, rescaled), float64."""
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(n_real, dim, generator=g, dtype=torch.float64) @ torch.randn(dim, dim, generator=g,
                                                                                   dtype=torch.float64) / dim**0.5
    mix = torch.eye(dim, dtype=torch.float64) + 0.3 * torch.randn(dim, dim, generator=g, dtype=torch.float64)
    fake = 1.5 * torch.randn(n_fake, dim, generator=g, dtype=torch.float64) @ mix / dim**0.5 + 0.2
    return real, fake


@pytest.mark.parametrize("n_real, n_fake, dim", [(600, 500, 64), (300, 200, 128), (40, 30, 64)])
def test_fid_equals_torchmetrics(n_real, n_fake, dim):
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = feature_sets(n_real, n_fake, dim, seed=dim + n_fake)
    reference = FrechetInceptionDistance(feature=Features(dim))
    reference.update(real, real=True)
    reference.update(fake, real=False)
    ours = fid(FeatureStatistics(dim).update(real), FeatureStatistics(dim).update(fake))
    # the last case has fewer samples than dimensions: singular covariances
    assert ours == pytest.approx(float(reference.compute()), rel=1e-6)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save all extracted features")
@pytest.mark.parametrize("n, dim", [(400, 64), (150, 256)])
def test_kid_equals_torchmetrics(n, dim):
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = feature_sets(n, n, dim, seed=n)
    # subsets of the whole set: every subset is a permutation of it, so both means are the MMD^2 of the full sets
    reference = KernelInceptionDistance(feature=Features(dim), subsets=3, subset_size=n)
    reference.update(real, real=True)
    reference.update(fake, real=False)
    ours, _ = kid(real, fake, subsets=3, subset_size=n)
    assert ours == pytest.approx(float(reference.compute()[0]), rel=1e-6)


@pytest.mark.parametrize("n_real, n_fake, dim", [(300, 250, 16), (200, 400, 8)])
def test_precision_recall_density_coverage_equal_prdc(n_real, n_fake, dim):
    from prdc import compute_prdc

    real, fake = feature_sets(n_real, n_fake, dim, seed=dim)
    reference_3 = compute_prdc(real_features=real.numpy(), fake_features=fake.numpy(), nearest_k=3)
    reference_5 = compute_prdc(real_features=real.numpy(), fake_features=fake.numpy(), nearest_k=5)
    precision, recall = precision_recall(real, fake, k=3)
    density, coverage = density_coverage(real, fake, k=5)
    assert (precision, recall) == pytest.approx((reference_3["precision"], reference_3["recall"]), abs=1e-12)
    assert (density, coverage) == pytest.approx((reference_5["density"], reference_5["coverage"]), abs=1e-12)
    assert 0 < precision < 1 and 0 < recall < 1 and 0 < coverage < 1  # the sets overlap only partly


def test_inception_features_equal_torch_fidelity():
    spec = importlib.util.spec_from_file_location("inception_golden", GOLDEN / "inception_golden.py")
    golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(golden)
    model = FIDInceptionV3().double().eval()
    state = golden.random_state(model.state_dict())
    model.load_state_dict(state, strict=True)
    images = golden.pattern_images()
    with safe_open(str(golden.GOLDEN), framework="pt") as f:
        expected, meta = f.get_tensor("features"), f.metadata()
    assert golden.sha256(state) == meta["weights_sha256"], "the random weights differ from the golden file's: rerun it"
    assert golden.sha256({"images": images}) == meta["images_sha256"]
    with torch.no_grad():
        features = model((images.double() - 128) / 128)  # torch-fidelity's input scaling of uint8 images
    scale = expected.abs().max().item()
    assert scale > 1 and np.isfinite(scale)  # features of order one, not vanished or blown up
    torch.testing.assert_close(features.float(), expected, rtol=1e-5, atol=1e-5 * scale)
