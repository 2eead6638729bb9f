import numpy as np
import pytest
import torch

from aigckit.config import DataConfig
from aigckit.data import load_dataset
from aigckit.evaluation.metrics import (FeatureStatistics, classifier_score, conditional_accuracy, density_coverage,
                                        fid, frechet_distance, kid, memorisation, precision_recall)


def gaussian(n, mean, std, seed):
    return torch.randn(n, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * \
        torch.tensor(std) + torch.tensor(mean)


def test_fid_of_a_set_with_itself_is_zero():
    x = gaussian(500, [0.0] * 8, [1.0] * 8, 0)
    stats = FeatureStatistics(8).update(x)
    assert abs(fid(stats, stats)) < 1e-6


def test_frechet_distance_equals_the_closed_form_for_known_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 0.5])
    s1, s2 = np.diag([1.0, 4.0, 0.25]), np.diag([2.0, 1.0, 1.0])
    # commuting (diagonal) covariances: Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt(a) - sqrt(b))^2
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(np.diag(s1)) - np.sqrt(np.diag(s2))) ** 2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]  # invariant to a common rotation
    assert frechet_distance(rotation @ mu1, rotation @ s1 @ rotation.T, rotation @ mu2,
                            rotation @ s2 @ rotation.T) == pytest.approx(expected, rel=1e-7)


def test_fid_from_samples_approaches_the_closed_form():
    a, b = gaussian(20000, [0.0, 0.0], [1.0, 2.0], 1), gaussian(20000, [1.0, 0.0], [1.0, 1.0], 2)
    expected = 1.0 + (2.0 - 1.0) ** 2
    assert fid(FeatureStatistics(2).update(a), FeatureStatistics(2).update(b)) == pytest.approx(expected, abs=0.05)


def test_fid_does_not_depend_on_batch_size():
    a, b = gaussian(1000, [0.0] * 6, [1.0] * 6, 3), gaussian(1000, [0.3] * 6, [1.5] * 6, 4)
    whole = fid(FeatureStatistics(6).update(a), FeatureStatistics(6).update(b))
    batched_a, batched_b = FeatureStatistics(6), FeatureStatistics(6)
    for chunk in a.split(7):
        batched_a.update(chunk)
    for chunk in b.split(250):
        batched_b.update(chunk)
    assert fid(batched_a, batched_b) == pytest.approx(whole, rel=1e-9)
    assert np.allclose(batched_a.covariance, np.cov(a.numpy(), rowvar=False))


def test_kid_is_unbiased_on_identical_distributions_and_positive_on_different_ones():
    a, b = gaussian(2000, [0.0] * 16, [1.0] * 16, 5), gaussian(2000, [0.0] * 16, [1.0] * 16, 6)
    mean, std = kid(a, b, subsets=20, subset_size=500)
    assert abs(mean) < 3 * std + 1e-4
    shifted, _ = kid(a, gaussian(2000, [0.5] * 16, [1.0] * 16, 7), subsets=20, subset_size=500)
    assert shifted > 10 * max(abs(mean), 1e-4)


def test_precision_recall_and_density_coverage_on_identical_and_disjoint_sets():
    x = gaussian(300, [0.0] * 4, [1.0] * 4, 8)
    assert precision_recall(x, x) == (1.0, 1.0)
    assert density_coverage(x, x)[1] == 1.0
    far = x + 100.0
    assert precision_recall(x, far) == (0.0, 0.0)
    assert density_coverage(x, far) == (0.0, 0.0)


def test_classifier_score_and_conditional_accuracy():
    confident = torch.eye(10).repeat(200, 1) * 50  # every class used, each image certain
    # 10 is the limit; shuffled splits of 200 rows use the classes a little unevenly (about 9.7)
    assert classifier_score(confident)[0] == pytest.approx(10.0, rel=0.05)
    assert classifier_score(torch.zeros(200, 10))[0] == pytest.approx(1.0)
    accuracy = conditional_accuracy(confident, torch.arange(2000) % 10, 10)
    assert accuracy["overall"] == 1.0 and accuracy["3"] == 1.0
    by_class = torch.eye(10).repeat_interleave(200, dim=0) * 50  # sorted by class, as a test split by file name
    assert classifier_score(by_class)[0] == pytest.approx(10.0, rel=0.05)  # not 1: each split holds every class


def test_classifier_score_matches_torchmetrics_inception_score():
    from torchmetrics.image.inception import InceptionScore

    logits = torch.randn(500, 10, generator=torch.Generator().manual_seed(3)) * 3
    reference = InceptionScore(feature=torch.nn.Identity(), splits=1)  # the logits are the "features" given
    reference.update(logits)
    assert classifier_score(logits, splits=1)[0] == pytest.approx(float(reference.compute()[0]), rel=1e-5)


def test_memorisation_flags_training_images_but_not_held_out_ones():
    train = load_dataset(DataConfig(name="digits", image_size=8), "train").images
    held_out = load_dataset(DataConfig(name="digits", image_size=8), "val").images
    copies = memorisation(train[:100], train)
    assert copies["near_copy_fraction"] == 1.0
    fresh = memorisation(held_out[:100], train)
    assert fresh["near_copy_fraction"] < 0.05
