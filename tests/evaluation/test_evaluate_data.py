"""Evaluation keyed by the data's identity, unlabelled folders through Inception, seeded manifold subsets."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from aigckit.config import DataConfig
from aigckit.errors import AigcError
from aigckit.evaluation.evaluate import _real_features, evaluate_run, manifold_subset
from aigckit.evaluation.extractors import FIDInceptionV3, load_or_train_evaluator
from aigckit.training import Trainer
from helpers import tiny_config


def image_folder(root, n=40, *, classes=(), seed=0):
    """n random colour 12x10 images under root (split evenly into class sub-folders when classes are given)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = root / classes[i % len(classes)] if classes else root
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return root


class CountingExtractor:
    """Pixels as features; counts the images it is asked for, so a cache hit is visible."""

    info = {"extractor": "pixels", "weights_sha256": "0" * 64}
    evaluator = None

    def __init__(self):
        self.seen = 0

    def __call__(self, images):
        self.seen += len(images)
        return images.flatten(1), None


def test_real_feature_statistics_are_keyed_by_the_data_not_its_name(tmp_path):
    first, second = image_folder(tmp_path / "first", seed=0), image_folder(tmp_path / "second", seed=1)
    cache = tmp_path / "cache"
    extractor = CountingExtractor()
    a = _real_features(extractor, DataConfig(name="imagefolder", root=str(first), image_size=8), cache)
    b = _real_features(extractor, DataConfig(name="imagefolder", root=str(second), image_size=8), cache)
    assert not torch.equal(a["features"], b["features"]) and len(list((cache / "stats").iterdir())) == 2
    seen = extractor.seen
    again = _real_features(extractor, DataConfig(name="imagefolder", root=str(first), image_size=8), cache)
    assert extractor.seen == seen and torch.equal(again["features"], a["features"])  # read from the cache
    grey = _real_features(extractor, DataConfig(name="imagefolder", root=str(first), image_size=8, channels=1), cache)
    assert grey["features"].shape[1] == 64 and a["features"].shape[1] == 192
    for path in first.iterdir():  # new contents under the old names
        Image.new("RGB", (12, 10), (9, 9, 9)).save(path)
    changed = _real_features(extractor, DataConfig(name="imagefolder", root=str(first), image_size=8), cache)
    assert not torch.equal(changed["features"], a["features"]) and len(list((cache / "stats").iterdir())) == 4


def test_evaluators_are_keyed_by_the_data_not_its_name(tmp_path):
    cache = tmp_path / "cache"
    configs = [DataConfig(name="imagefolder", root=str(image_folder(tmp_path / name, classes=("a", "b"), seed=seed)),
                          image_size=8, val_fraction=0.25) for seed, name in enumerate(("first", "second"))]
    evaluators = [load_or_train_evaluator(config, cache, steps=5) for config in configs]
    assert evaluators[0].info["data_fingerprint"] != evaluators[1].info["data_fingerprint"]
    assert len(list((cache / "evaluators").iterdir())) == 2
    assert evaluators[0].info["data"][0]["root"] == str((tmp_path / "first").resolve())
    assert load_or_train_evaluator(configs[1], cache, steps=5).info == evaluators[1].info  # cached


def test_the_manifold_subset_is_a_seeded_sample_of_every_class():
    labels = torch.arange(3).repeat_interleave(3000)  # class-ordered, as an image folder's classes are
    picked = manifold_subset(len(labels), 5000, seed=0)
    assert len(picked) == 5000 and len(set(picked.tolist())) == 5000
    counts = torch.bincount(labels[picked], minlength=3)
    assert (counts > 1500).all(), counts  # the first 5000 would hold no image of class 2
    assert torch.equal(picked, manifold_subset(len(labels), 5000, seed=0))
    assert not torch.equal(picked, manifold_subset(len(labels), 5000, seed=1))
    assert torch.equal(manifold_subset(300, 5000, seed=0), torch.arange(300))


@pytest.fixture(scope="module")
def unlabelled_run(tmp_path_factory):
    """A Gaussian VAE trained for a few steps on a folder of colour pictures without class folders, read as grey."""
    tmp = tmp_path_factory.mktemp("unlabelled")
    folder = image_folder(tmp / "pictures", n=24)
    config = tiny_config({"name": "mlp-vae", "likelihood": "gaussian"},
                         data={"name": "imagefolder", "root": str(folder), "channels": 1, "val_fraction": 0.25},
                         train={"max_steps": 3, "batch_size": 8, "log_every": 50})
    Trainer(config, tmp / "run", show_progress=False).fit()
    torch.manual_seed(0)
    weights = tmp / "inception.safetensors"  # random weights: the published ones cannot be had offline
    save_file({k: v.contiguous() for k, v in FIDInceptionV3().state_dict().items()}, str(weights))
    return tmp / "run", weights


@pytest.mark.slow
def test_an_unlabelled_folder_evaluates_with_inception_without_classifier_scores(unlabelled_run, tmp_path):
    run, weights = unlabelled_run  # Inception at 299x299 takes about a second per image on two CPU cores
    result = evaluate_run(run, n=6, extractor="inception", inception_weights=weights, cache_dir=tmp_path,
                          batch_size=3)
    assert result["extractor"] == "inception-v3-fid" and result["fallback"] is None
    assert math.isfinite(result["fid"]) and math.isfinite(result["kid_mean"]) and 0 <= result["precision"] <= 1
    assert result["classifier_score"] is None and result["conditional_accuracy"] is None
    assert result["real_classifier_score"] is None and "no labels" in result["classifier_scores_left_out"]
    assert result["channels"] == 1 and result["n_real"] == 6  # the run's grey reading of the folder, its test split
    likelihood = result["likelihood"]
    assert likelihood["dims"] == 64 and likelihood["discretisation"] == "8-bit"
    assert math.isfinite(likelihood["bits_per_dim"]) and likelihood["bits_per_dim"] > 0


def test_an_unlabelled_folder_needs_the_inception_extractor_and_its_weights(unlabelled_run, tmp_path):
    run, _ = unlabelled_run
    with pytest.raises(AigcError, match="no labels.*--extractor inception"):
        evaluate_run(run, n=12, cache_dir=tmp_path)
    with pytest.raises(AigcError, match="no labels.*pt_inception-2015-12-05"):
        evaluate_run(run, n=12, extractor="inception", cache_dir=tmp_path)
    with pytest.raises(AigcError, match="does not exist"):
        evaluate_run(run, n=12, extractor="inception", inception_weights=tmp_path / "missing.pth", cache_dir=tmp_path)


def test_samples_measured_at_another_size_go_through_the_loaders_resize(tmp_path):
    """28x28 MNIST test images, treated as a model's samples and measured at 32, equal the loader's own 32x32
    images bit for bit: both sides of an FID at another size see the same transform."""
    from pathlib import Path

    from aigckit.data import load_dataset
    from aigckit.evaluation.evaluate import resize_as_loaded

    root = Path(__file__).parents[3] / "shared" / "data" / "mnist"
    native = load_dataset(DataConfig(name="mnist", root=str(root), image_size=28), "test")
    resized = load_dataset(DataConfig(name="mnist", root=str(root), image_size=32), "test")
    rows = torch.arange(0, 10000, 97)
    samples = native.batch(rows)["images"]
    assert samples.shape[-1] == 28
    torch.testing.assert_close(resize_as_loaded(samples, 32), resized.batch(rows)["images"], atol=0, rtol=0)
