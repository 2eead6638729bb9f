"""`evaluate_run`: the same quality, diversity and likelihood numbers for every image family."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..cache import default_cache_dir
from ..checkpoint import atomic_write_text
from ..config import DataConfig, config_from_dict
from ..data import load_dataset
from ..errors import AigcError
from ..imaging import save_grid
from ..pipelines import ImagePipeline, TextPipeline, load
from .extractors import INCEPTION_HELP, load_inception, load_or_train_evaluator
from .metrics import (FeatureStatistics, classifier_score, conditional_accuracy, density_coverage, fid, kid,
                      memorisation, precision_recall)

__all__ = ["evaluate_run", "run_config"]

MANIFOLD_LIMIT = 5000  # precision/recall and density/coverage use at most this many points per side
MEMORISATION_LIMIT = 1000


def run_config(run_dir: Path):
    """The resolved RunConfig saved in a run directory."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise AigcError(f"{run_dir} has no config.yaml; pass a run directory made by aigckit train")
    return config_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))


class _Extractor:
    """Features for FID/KID/PR from the chosen network, plus the evaluator's logits for the scores."""

    def __init__(self, kind: str, data: DataConfig, cache_dir: Path, inception_weights: Path | None) -> None:
        self.evaluator = load_or_train_evaluator(data, cache_dir)
        self.kind, self.fallback = kind, None
        self.inception = None
        if kind == "inception":
            if inception_weights is not None and Path(inception_weights).is_file():
                self.inception, digest = load_inception(inception_weights)
                self.info = {"extractor": "inception-v3-fid", "weights_sha256": digest, "resize": "bilinear to 299"}
            else:
                self.kind = "evaluator"
                self.fallback = f"no Inception weights given; {INCEPTION_HELP}. Fell back to the dataset evaluator."
        if self.kind == "evaluator":
            self.info = {"extractor": f"evaluator-{data.name}-{data.image_size}",
                         "weights_sha256": self.evaluator.info["sha256"], "resize": "none",
                         "evaluator_held_out_accuracy": self.evaluator.info["held_out_accuracy"]}

    @torch.no_grad()
    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        features, logits = self.evaluator.features_and_logits(images)
        if self.inception is not None:
            features = torch.cat([self.inception(chunk) for chunk in images.split(50)])
        return features, logits


def _real_features(extractor: _Extractor, data: DataConfig, cache_dir: Path) -> dict[str, Tensor]:
    """Features of the held-out split, cached per (dataset, split, extractor, weights, size)."""
    key = f"{data.name}-test-{extractor.info['extractor']}-{extractor.info['weights_sha256'][:12]}-{data.image_size}"
    path = cache_dir / "stats" / f"{key}.safetensors"
    if path.is_file():
        return load_file(str(path))
    real = load_dataset(data, "test")
    features, logits = extractor(real.images)
    stats = FeatureStatistics(features.shape[1]).update(features)
    out = {"features": features.float().contiguous(), "logits": logits.float().contiguous(),
           "mean": torch.from_numpy(stats.mean), "covariance": torch.from_numpy(stats.covariance)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(out, str(tmp))
    tmp.replace(path)
    return out


def _generate(pipeline: ImagePipeline, n: int, batch_size: int, seed: int, options: dict) -> tuple[Tensor, Tensor | None]:
    labels = torch.arange(n) % pipeline.num_classes if pipeline.num_classes else None
    images = []
    for i, start in enumerate(range(0, n, batch_size)):
        chunk = labels[start:start + batch_size] if labels is not None else None
        images.append(pipeline.sample(min(batch_size, n - start), labels=chunk, seed=seed + i, **options))
    return torch.cat(images).cpu(), labels


def _likelihood(pipeline: ImagePipeline, data: DataConfig, seed: int) -> dict[str, float] | None:
    if not hasattr(pipeline.family, "log_likelihood"):
        return None
    val = load_dataset(data, "val")
    images, labels = val.images[:500], (val.labels[:500] if pipeline.num_classes else None)
    g = torch.Generator().manual_seed(seed)
    if pipeline.family.name == "vae":
        bounds = pipeline.family.log_likelihood(pipeline.model, images, labels, k=64, generator=g)
        return {"elbo_nats": float(bounds["elbo"].mean()), "iwae_nats": float(bounds["iwae"].mean()),
                "bits_per_dim": float(bounds["bits_per_dim"].mean()), "k": 64, "bound": "IWAE", "split": "val",
                "n_images": len(images)}
    images, labels = images[:250], (labels[:250] if labels is not None else None)  # T network passes per image
    bounds = pipeline.family.log_likelihood(pipeline.model, images, labels, timesteps=100, generator=g)
    return {"nats": float(bounds["nats"].mean()), "bits_per_dim": float(bounds["bits_per_dim"].mean()),
            "bound": "fixed-variance DDPM bound, 100 strided timesteps (unbiased estimate)", "split": "val",
            "n_images": len(images)}


def evaluate_run(run_dir: str | Path, *, n: int = 10000, extractor: str = "evaluator",
                 inception_weights: str | Path | None = None, sampler: str | None = None, steps: int | None = None,
                 guidance: float | None = None, batch_size: int = 250, seed: int = 0, cache_dir: Path | None = None,
                 sweep: tuple[int, ...] = (), with_likelihood: bool = True) -> dict[str, Any]:
    """Sample n images from a run and measure them against the held-out split; writes run_dir/eval/metrics.json."""
    run_dir = Path(run_dir)
    started = time.perf_counter()
    config = run_config(run_dir)
    pipeline = load(run_dir)
    if isinstance(pipeline, TextPipeline):
        from .language import evaluate_language_model

        return evaluate_language_model(run_dir, pipeline, config.data, n=min(n, 100), seed=seed)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    data = DataConfig(name=config.data.name, root=config.data.root, image_size=pipeline.config.image_size,
                      val_fraction=config.data.val_fraction, download=config.data.download)
    features = _Extractor(extractor, data, cache_dir, Path(inception_weights) if inception_weights else None)
    real = _real_features(features, data, cache_dir)
    real_stats = FeatureStatistics(real["features"].shape[1]).update(real["features"])

    options = {k: v for k, v in {"sampler": sampler, "steps": steps, "guidance": guidance}.items() if v is not None}
    images, labels = _generate(pipeline, n, batch_size, seed, options)
    fake_features, fake_logits = features(images)
    fake_stats = FeatureStatistics(fake_features.shape[1]).update(fake_features)
    kid_mean, kid_std = kid(real["features"], fake_features)
    precision, recall = precision_recall(real["features"][:MANIFOLD_LIMIT], fake_features[:MANIFOLD_LIMIT])
    density, coverage = density_coverage(real["features"][:MANIFOLD_LIMIT], fake_features[:MANIFOLD_LIMIT])
    score_mean, score_std = classifier_score(fake_logits)

    train = load_dataset(data, "train").images
    copies = memorisation(images[:MEMORISATION_LIMIT], train)
    worst = copies["ratio"].argsort()[:8]
    pairs = torch.stack([images[worst], train[copies["nearest_index"][worst]]], dim=1).flatten(0, 1)
    out_dir = run_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    save_grid(pairs, out_dir / "nearest-training-images.png", nrow=2, upscale=max(1, 48 // images.shape[-1]))

    family_config = pipeline.config
    result: dict[str, Any] = {
        "run": str(run_dir), "checkpoint": str(pipeline.checkpoint), "family": pipeline.family.name,
        "model": family_config.name, "dataset": data.name, "real_split": "test", "image_size": data.image_size,
        "n_samples": n, "n_real": int(real["features"].shape[0]),
        **features.info, "fallback": features.fallback,
        "sampler": ({"sampler": sampler or family_config.sampler, "steps": steps or family_config.sampling_steps,
                     "guidance": 1.0 if guidance is None else guidance} if pipeline.family.name == "diffusion" else None),
        "seed": seed,
        "fid": fid(real_stats, fake_stats), "kid_mean": kid_mean, "kid_std": kid_std,
        "precision": precision, "recall": recall, "density": density, "coverage": coverage,
        "classifier_score": score_mean, "classifier_score_std": score_std,
        "real_classifier_score": classifier_score(real["logits"])[0],
        "conditional_accuracy": (conditional_accuracy(fake_logits, labels, pipeline.num_classes)
                                 if labels is not None else None),
        "memorisation": {"near_copy_fraction": copies["near_copy_fraction"], "threshold": "1/3 of the median "
                         "train-to-train nearest-neighbour distance (pixels)",
                         "typical_train_nn_distance": copies["typical_train_nn_distance"],
                         "n_checked": int(min(n, MEMORISATION_LIMIT)),
                         "worst_pairs_png": str(out_dir / "nearest-training-images.png")},
        "likelihood": _likelihood(pipeline, data, seed) if with_likelihood else None,
    }
    if sweep and pipeline.family.name == "diffusion":
        result["sweep"] = _steps_sweep(pipeline, features, real_stats, sweep, min(n, 2000), batch_size, seed)
    result["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result


def _steps_sweep(pipeline, features, real_stats, steps_list, n, batch_size, seed) -> list[dict]:
    """FID for each sampler at each step count, on n samples."""
    rows = []
    for sampler in ("ddpm", "ddim", "dpm-solver++"):
        for steps in steps_list:
            images, _ = _generate(pipeline, n, batch_size, seed, {"sampler": sampler, "steps": steps})
            stats = FeatureStatistics(real_stats.sum.shape[0]).update(features(images)[0])
            rows.append({"sampler": sampler, "steps": steps, "n_samples": n, "fid": fid(real_stats, stats)})
    return rows
