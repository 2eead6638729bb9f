"""`evaluate_run`: the same quality, diversity and likelihood numbers for every image family."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from ..atomic import atomic_path, atomic_write_text
from ..cache import default_cache_dir
from ..config import DataConfig, config_from_dict, parse_yaml
from ..data import load_dataset
from ..data.base import data_fingerprint, data_identity
from ..data.transforms import resize_pixels, to_model_range
from ..errors import AigcError
from ..imaging import save_grid
from ..pipelines import ImagePipeline, TextPipeline, VideoPipeline, load
from ..pipelines.speech import AUDIO_DATASETS, run_vocoder
from .extractors import INCEPTION_HELP, load_inception, load_or_train_evaluator
from .metrics import (FeatureStatistics, classifier_score, conditional_accuracy, density_coverage, fid, kid,
                      memorisation, precision_recall)
from .text_to_image import CAPTIONED_DATASETS

__all__ = ["evaluate_run", "evaluate_sampler", "run_config", "manifold_subset", "resize_as_loaded"]

MANIFOLD_LIMIT = 5000  # precision/recall and density/coverage use at most this many points per side
MEMORISATION_LIMIT = 1000
LIKELIHOOD_IMAGES = 250  # validation images the likelihood bound is averaged over
SWEEP_SAMPLERS = ("ddpm", "ddim", "dpm-solver++")
STYLIZED_IMAGES = 100  # held-out content images a stylizer run is scored on


def run_config(run_dir: Path):
    """The resolved RunConfig saved in a run directory."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise AigcError(f"{run_dir} has no config.yaml; pass a run directory made by aigckit train")
    return config_from_dict(parse_yaml(path.read_text(encoding="utf-8")))


def manifold_subset(n: int, limit: int, seed: int) -> Tensor:
    """Indices of a seeded uniform sample of min(n, limit) of n rows, ascending (all rows when n <= limit), so
    that a subset of class-ordered data holds every class in proportion, not the first classes only."""
    if n <= limit:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit].sort().values


class _Extractor:
    """Features for FID/KID/PR from the chosen network; the evaluator's logits for the scores when the data has
    labels (an unlabelled dataset has no evaluator: then `logits` are None)."""

    def __init__(self, kind: str, data: DataConfig, labelled: bool, cache_dir: Path,
                 inception_weights: Path | None) -> None:
        self.kind, self.fallback, self.inception, self.evaluator = kind, None, None, None
        if kind == "inception" and inception_weights is not None:
            self.inception, digest = load_inception(inception_weights)  # a wrong path is refused in one line
            self.info = {"extractor": "inception-v3-fid", "weights_sha256": digest, "resize": "bilinear to 299"}
        elif kind == "inception" and labelled:
            self.kind = "evaluator"
            self.fallback = f"no Inception weights given; {INCEPTION_HELP}. Fell back to the dataset evaluator."
        elif kind == "inception":
            raise AigcError(f"{data.name} has no labels, so only the Inception extractor can measure it and it "
                            f"needs its weights; {INCEPTION_HELP}")
        elif not labelled:
            raise AigcError(f"{data.name} has no labels, so no evaluator can be trained; use --extractor "
                            f"inception --inception-weights FILE")
        if labelled:
            self.evaluator = load_or_train_evaluator(data, cache_dir)
        if self.kind == "evaluator":
            self.info = {"extractor": f"evaluator-{data.name}-{data.image_size}",
                         "weights_sha256": self.evaluator.info["sha256"], "resize": "none",
                         "evaluator_held_out_accuracy": self.evaluator.info["held_out_accuracy"]}

    @torch.no_grad()
    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        features = logits = None
        if self.evaluator is not None:
            features, logits = self.evaluator.features_and_logits(images)
        if self.inception is not None:
            features = torch.cat([self.inception(chunk) for chunk in images.split(50)])
        return features, logits


def _real_features(extractor: _Extractor, data: DataConfig, cache_dir: Path) -> dict[str, Tensor]:
    """Features (and evaluator logits) of the held-out split, cached under a hash of what they depend on:
    the data's identity (name, resolved folder, digest of the files, size, channels, split), the extractor
    and its weights, and the evaluator giving the logits."""
    key = {"data": data_identity(data, "test"), "extractor": extractor.info["extractor"],
           "weights_sha256": extractor.info["weights_sha256"],
           "evaluator_sha256": extractor.evaluator.info["sha256"] if extractor.evaluator is not None else None}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / "stats" / f"{data.name}-test-{data.image_size}-{digest}.safetensors"
    if path.is_file():
        with safe_open(str(path), framework="pt") as f:
            return {name: f.get_tensor(name) for name in f.keys()}
    real = load_dataset(data, "test")
    features, logits = extractor(real.images)
    out = {"features": features.float().contiguous()}
    if logits is not None:
        out["logits"] = logits.float().contiguous()
    with atomic_path(path) as tmp:
        save_file(out, str(tmp), metadata={"key": json.dumps(key, sort_keys=True)})
    return out


def resize_as_loaded(images: Tensor, size: int) -> Tensor:
    """Images in [-1, 1] stored as 8-bit pixels and resized to `size` exactly as the dataset loader resizes."""
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().numpy()
    return to_model_range(resize_pixels(pixels, size))


def _generate(pipeline: ImagePipeline, n: int, batch_size: int, seed: int, options: dict,
              prompts: list[str] | None = None) -> tuple[Tensor, Tensor | None]:
    """n samples, batch by batch: class-conditional models cycle through the classes, text-conditional ones draw
    `prompts` (n of them)."""
    labels = torch.arange(n) % pipeline.num_classes if pipeline.num_classes else None
    images = []
    for i, start in enumerate(range(0, n, batch_size)):
        chunk = labels[start:start + batch_size] if labels is not None else None
        extra = {"prompt": prompts[start:start + batch_size]} if prompts is not None else {}
        images.append(pipeline.sample(min(batch_size, n - start), labels=chunk, seed=seed + i, **options, **extra))
    return torch.cat(images).cpu(), labels


def _likelihood(pipeline: ImagePipeline, data: DataConfig, seed: int) -> dict[str, Any] | None:
    """The family's bound on -log p(x) over the first validation images, as the family describes it; bits/dim only
    where its pixel model is a probability of 8-bit data."""
    if not pipeline.family.supports("log_likelihood"):
        return None
    val = load_dataset(data, "val")
    images = val.batch(torch.arange(min(len(val), LIKELIHOOD_IMAGES)))["images"]  # converts only these
    labels = val.labels[:LIKELIHOOD_IMAGES] if pipeline.num_classes and val.labels is not None else None
    generator = torch.Generator().manual_seed(seed)
    result = pipeline.family.log_likelihood(pipeline.model, images, labels, generator=generator)
    bits = result.get("bits_per_dim")
    return {"bound": result["bound"], "pixel_model": result["pixel_model"],
            "discretisation": result["discretisation"], "nats": float(result["nats"].mean()),
            "bits_per_dim": float(bits.mean()) if bits is not None else None, "dims": int(result["dims"]),
            "split": "val", "n_images": len(images), "data_fingerprint": data_fingerprint(data, "val")}


def _sampler_settings(pipeline: ImagePipeline, options: dict[str, Any]) -> dict[str, Any] | None:
    """The sampler, steps, guidance (and a clip's frame lag) used, for families whose sampler is an option (None
    otherwise)."""
    if "sampler" not in pipeline.family.sample_options:
        return None
    config = pipeline.config
    settings = {"sampler": options.get("sampler", config.sampler)}
    if "steps" in pipeline.family.sample_options:
        settings["steps"] = options.get("steps", config.sampling_steps)
    if "guidance" in pipeline.family.sample_options:
        settings["guidance"] = options.get("guidance", config.guidance)
    if isinstance(pipeline, VideoPipeline) and "frame_lag" in pipeline.family.sample_options:
        settings["frame_lag"] = options.get("frame_lag", config.frame_lag)
    return settings


def _clip_scores(clip_run: str | Path, pipeline: Any, images: Tensor, prompts: list[str], chosen: np.ndarray,
                 caption_sets: dict[str, np.ndarray], data: DataConfig) -> dict[str, Any]:
    """CLIP-score (evaluation.clip_score) of the generated images with the captions they were drawn for, of the
    real test images with their own captions (the ceiling) and with another image's caption (the floor), per set
    of captions; whether the generator reads captions through this very clip model's text encoder is recorded,
    since its score is then not an independent judge."""
    from .clip_score import clip_extractor, clip_score, load_clip

    model = load_clip(clip_run)
    real = load_dataset(data, "test").images[torch.as_tensor(chosen)]
    extractor = clip_extractor(model)
    own = getattr(pipeline.config, "text_encoder_run", None)
    result: dict[str, Any] = {"extractor": extractor, "generator_reads_its_text_encoder": bool(
        own is not None and Path(own).resolve() == Path(clip_run).resolve())}
    start = 0
    for name, rows in caption_sets.items():
        part = slice(start, start + len(rows))  # chosen is the sets' rows one after another
        start += len(rows)
        texts = prompts[part]
        result[name] = {"generated": clip_score(model, images[part], texts),
                        "real_test": clip_score(model, real[part], texts),
                        "real_test_other_caption": clip_score(model, real[part], texts[1:] + texts[:1])}
    return result


def evaluate_run(run_dir: str | Path, *, n: int = 10000, extractor: str = "evaluator",
                 inception_weights: str | Path | None = None, sampler: str | None = None, steps: int | None = None,
                 guidance: float | None = None, batch_size: int = 250, seed: int = 0, cache_dir: Path | None = None,
                 sweep: tuple[int, ...] = (), with_likelihood: bool = True, precision: str = "auto",
                 image_size: int | None = None, vocoder: str = "griffin-lim",
                 clip_run: str | Path | None = None, frame_lag: int | None = None) -> dict[str, Any]:
    """Sample n images from a run and measure them against the held-out split; writes run_dir/eval/metrics.json.

    precision: what the samples are generated in ('auto': as training chooses for this machine); features,
    statistics and likelihoods are always computed in fp32. image_size: measure at this size instead of the
    model's (models of several sizes on one evaluator): the samples, stored as 8-bit images, are resized exactly
    as the dataset loader resizes the real images. vocoder: how an audio run's clips become sound to be scored as
    heard (aigckit.pipelines.speech.VOCODERS). clip_run: a clip run that scores a text-to-image run's images
    against their captions (CLIP-score, beside the real canvases' own)."""
    run_dir = Path(run_dir)
    started = time.perf_counter()
    config = run_config(run_dir)
    if vocoder != "griffin-lim" and config.data.name not in AUDIO_DATASETS:
        raise AigcError(f"a vocoder turns spectrograms into sound; {run_dir} was trained on {config.data.name}, not "
                        f"on audio, so drop --vocoder")
    pipeline = load(run_dir, precision=precision)
    if clip_run is not None and not pipeline.text_conditional:
        raise AigcError(f"a CLIP-score measures images against their captions; {run_dir} is not text-conditional, "
                        f"so drop --clip")
    if isinstance(pipeline, TextPipeline):
        from .language import evaluate_language_model

        return evaluate_language_model(run_dir, pipeline, config.data, n=min(n, 100), seed=seed)
    if pipeline.family.name == "style":
        from .stylizer import evaluate_stylizer

        return evaluate_stylizer(run_dir, pipeline, config.data, n=min(n, STYLIZED_IMAGES))
    if isinstance(pipeline, VideoPipeline):
        from .video import evaluate_video_run

        if image_size not in (None, pipeline.config.image_size) or sweep:
            raise AigcError("a video run is measured at its own frame size and sampler settings; drop --image-size "
                            "and --sweep")
        if pipeline.frames < 2:  # refused before anything is drawn or written
            raise AigcError(f"{run_dir} is a one-frame run (data {config.data.name}), and the video evaluator "
                            f"scores clips; evaluate the video run started from this one (model.init_from)")
        options = {k: v for k, v in {"sampler": sampler, "steps": steps, "guidance": guidance,
                                     "frame_lag": frame_lag}.items() if v is not None}
        return evaluate_video_run(run_dir, pipeline, config.data, Path(cache_dir) if cache_dir else default_cache_dir(),
                                  n=n, batch_size=batch_size, seed=seed, options=options,
                                  sampler=_sampler_settings(pipeline, options))
    if frame_lag is not None:
        raise AigcError("frame_lag staggers the frames of a clip, and this run makes images; drop it")
    if sweep and not {"sampler", "steps"} <= pipeline.family.sample_options:
        raise AigcError(f"--sweep needs a model whose sampler and steps can be chosen; {pipeline.config.name} "
                        f"models have none, so drop --sweep")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    # the run's own data settings (root, channels, validation share), at the model's size or the one asked for
    if image_size is not None and image_size < 8:
        raise AigcError(f"image_size must be at least 8 (the evaluator's input), got {image_size}")
    data = dataclasses.replace(config.data, image_size=image_size or pipeline.config.image_size)
    train_set = load_dataset(data, "train")
    train = train_set.images
    features = _Extractor(extractor, data, train_set.labels is not None, cache_dir,
                          Path(inception_weights) if inception_weights else None)
    real = _real_features(features, data, cache_dir)
    real_stats = FeatureStatistics(real["features"].shape[1]).update(real["features"])

    options = {k: v for k, v in {"sampler": sampler, "steps": steps, "guidance": guidance}.items() if v is not None}
    prompts = chosen = caption_sets = None
    if pipeline.text_conditional:  # drawn for the test split's captions (seen and held-out compositions)
        from .text_to_image import evaluation_captions

        captions, caption_sets = evaluation_captions(data, n, seed)
        chosen = np.concatenate(list(caption_sets.values()))
        n = len(chosen)
        prompts = [captions[i] for i in chosen]
    images, labels = _generate(pipeline, n, batch_size, seed, options, prompts)
    if images.shape[-1] != data.image_size:
        images = resize_as_loaded(images, data.image_size)
    fake_features, fake_logits = features(images)
    fake_stats = FeatureStatistics(fake_features.shape[1]).update(fake_features)
    kid_mean, kid_std = kid(real["features"], fake_features)
    real_subset = real["features"][manifold_subset(len(real["features"]), MANIFOLD_LIMIT, seed)]
    fake_subset = fake_features[manifold_subset(len(fake_features), MANIFOLD_LIMIT, seed + 1)]
    precision, recall = precision_recall(real_subset, fake_subset)
    density, coverage = density_coverage(real_subset, fake_subset)

    copies = memorisation(images[:MEMORISATION_LIMIT], train)
    worst = copies["ratio"].argsort()[:8]
    pairs = torch.stack([images[worst], train[copies["nearest_index"][worst]]], dim=1).flatten(0, 1)
    out_dir = run_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    save_grid(pairs, out_dir / "nearest-training-images.png", nrow=2, upscale=max(1, 48 // images.shape[-1]))

    scored = fake_logits is not None
    score_mean, score_std = classifier_score(fake_logits) if scored else (None, None)
    result: dict[str, Any] = {
        "run": str(run_dir), "checkpoint": str(pipeline.checkpoint), "family": pipeline.family.name,
        "model": pipeline.config.name, "dataset": data.name, "real_split": "test", "image_size": data.image_size,
        "model_image_size": pipeline.config.image_size,
        "channels": int(images.shape[1]), "data_fingerprint": data_fingerprint(data, "test"),
        "n_samples": n, "n_real": int(real["features"].shape[0]),
        **features.info, "fallback": features.fallback,
        "sampler": _sampler_settings(pipeline, options), "seed": seed, "sampling_precision": pipeline.precision.describe(),
        "fid": fid(real_stats, fake_stats), "kid_mean": kid_mean, "kid_std": kid_std,
        "precision": precision, "recall": recall, "density": density, "coverage": coverage,
        "manifold_points": {"real": len(real_subset), "fake": len(fake_subset),
                            "sampling": f"seeded uniform sample of at most {MANIFOLD_LIMIT} per side"},
        "classifier_score": score_mean, "classifier_score_std": score_std,
        "real_classifier_score": classifier_score(real["logits"])[0] if scored else None,
        "conditional_accuracy": (conditional_accuracy(fake_logits, labels, pipeline.num_classes)
                                 if scored and labels is not None else None),
        "classifier_scores_left_out": (None if scored else "the data has no labels, so there is no evaluator "
                                       "classifier: classifier score and conditional accuracy are left out"),
        "memorisation": {"near_copy_fraction": copies["near_copy_fraction"], "threshold": "1/3 of the median "
                         "train-to-train nearest-neighbour distance (pixels)",
                         "typical_train_nn_distance": copies["typical_train_nn_distance"],
                         "n_checked": int(min(n, MEMORISATION_LIMIT)),
                         "worst_pairs_png": str(out_dir / "nearest-training-images.png")},
        "likelihood": (_likelihood(pipeline, dataclasses.replace(data, image_size=pipeline.config.image_size), seed)
                       if with_likelihood else None),
    }
    if caption_sets is not None and data.name in CAPTIONED_DATASETS:
        from .text_to_image import evaluate_text_to_image, prompt_grid

        result["text_to_image"] = evaluate_text_to_image(images, chosen, data, cache_dir, caption_sets)
        examples = {name: [captions[i] for i in rows[:4]] for name, rows in caption_sets.items()}
        result["text_to_image"]["prompts_png"] = str(prompt_grid(pipeline, examples, out_dir / "prompts.png",
                                                                 seed=seed, **options))
    if clip_run is not None:
        result["clip_score"] = _clip_scores(clip_run, pipeline, images, prompts, chosen, caption_sets, data)
    if data.name in AUDIO_DATASETS and scored and labels is not None:
        from .audio import evaluate_audio

        result["audio"] = evaluate_audio(images, labels, data, pipeline.num_classes, features, real["features"],
                                         out_dir, seed, run_vocoder(run_dir, vocoder, cache_dir))
    if sweep:
        result["sweep"] = _steps_sweep(pipeline, features, real_stats, sweep, min(n, 2000), batch_size, seed)
    result["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result


def _steps_sweep(pipeline, features, real_stats, steps_list, n, batch_size, seed) -> list[dict]:
    """FID for each sampler at each step count, on n samples."""
    return [_sampler_row(pipeline, features, real_stats, sampler, steps, None, n, batch_size, seed)
            for sampler in SWEEP_SAMPLERS for steps in steps_list]


def _sampler_row(pipeline, features, real_stats, sampler, steps, guidance, n, batch_size, seed) -> dict[str, Any]:
    """FID, conditional accuracy (labelled data) and sampling seconds per image for one sampler and step count;
    guidance None: the model's default."""
    options = {"sampler": sampler, "steps": steps, **({} if guidance is None else {"guidance": guidance})}
    started = time.perf_counter()
    images, labels = _generate(pipeline, n, batch_size, seed, options)
    seconds = time.perf_counter() - started
    fake_features, logits = features(images)
    stats = FeatureStatistics(real_stats.sum.shape[0]).update(fake_features)
    accuracy = (conditional_accuracy(logits, labels, pipeline.num_classes)["overall"]
                if logits is not None and labels is not None else None)
    return {"sampler": sampler, "steps": steps, "n_samples": n, "fid": fid(real_stats, stats),
            "conditional_accuracy": accuracy, "seconds_per_image": seconds / n,
            "guidance": _sampler_settings(pipeline, options).get("guidance")}


def evaluate_sampler(run_dir: str | Path, *, sampler: str, steps: int, n: int, guidance: float | None = None,
                     batch_size: int = 250, seed: int = 0, cache_dir: Path | None = None,
                     precision: str = "auto") -> dict[str, Any]:
    """One cell of a sampler sweep: FID on the dataset evaluator's features, conditional accuracy and seconds per
    image for n samples of a diffusion run with `sampler` at `steps` (guidance None: the model config's)."""
    run_dir = Path(run_dir)
    pipeline = load(run_dir, precision=precision)
    if not {"sampler", "steps"} <= pipeline.family.sample_options:
        raise AigcError(f"{pipeline.config.name} models have no sampler to choose; pass a diffusion run")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    data = dataclasses.replace(run_config(run_dir).data, image_size=pipeline.config.image_size)
    features = _Extractor("evaluator", data, True, cache_dir, None)
    real = _real_features(features, data, cache_dir)
    real_stats = FeatureStatistics(real["features"].shape[1]).update(real["features"])
    return {**_sampler_row(pipeline, features, real_stats, sampler, steps, guidance, n, batch_size, seed),
            "extractor": features.info["extractor"], "sampling_precision": pipeline.precision.describe()}
