"""Video evaluation: an FVD-style Fréchet distance, per-frame FID and temporal consistency of digit identity.

FVD (Unterthiner et al. 2018, https://arxiv.org/abs/1812.01717) is a Fréchet distance on the features of I3D, an
action classifier pretrained on Kinetics; neither network nor weights exist here, so our figures use a network of
our own, named in every result and not comparable with published FVD numbers:

- the video evaluator (VideoEvaluatorNet), trained once per dataset by aigckit on its training clips and cached
  like the image evaluators (safetensors, sha256, held-out accuracies on the validation clips). It is trained in
  two stages. First a frame CNN (FrameNet: six convolutions, a 29-pixel receptive field, pooled to a 128-d frame
  feature, and a head) learns which digits a single frame shows: one sigmoid per class, from single frames of
  many clips a step. A first version (the image evaluator's three-convolution CNN, 9-pixel receptive field,
  trained on whole clips with a softmax over the classes' shares) read the exact set of digits of only 34 % of
  held-out 32x32 Moving MNIST frames; this one reads 82 % after as many steps (benchmarks/video.py). Then, with
  the frame CNN frozen, a small motion CNN on the differences of consecutive frames (the motion stream of
  two-stream networks, https://arxiv.org/abs/1406.2199) and a convolution over time learn the 128-d clip feature
  with two heads: which digits the clip holds (a sigmoid per class) and whether the clip moves as filmed or its
  motion was broken: frames shuffled in time (Misra et al. 2016, https://arxiv.org/abs/1603.08561) or one frame
  held for the whole clip. The held frame is the repeated-frame baseline's failure, so that the baseline scores badly is
  partly by construction (I3D sees motion for the same reason: it was trained on actions); clips mixed from
  frames of other clips were never trained on;
- FVD-style distance: the Fréchet distance between the clip features of two sets of clips;
- per-frame FID: the Fréchet distance between the frame features (the CNN applied to each frame alone) of all
  frames of two sets of clips: an FID with a frame classifier of this data, not Inception;
- temporal consistency, from pixels alone (generated clips have no layout): the identity set a frame shows is
  the classes whose sigmoid under the frame head is at least 0.5, and always the most probable one (a clip of
  two 3s shows {3}). A clip is consistent when every frame shows the same set, and mostly consistent when at
  least 90 % of its frames show its majority set (the most frequent one; ties to the smaller bit code): digits
  that cross hide each other for a frame or two, so even real clips are rarely consistent in every frame; we
  report both shares and the mean share of a clip's frames that show its majority set;
- identity kept where the digits are apart: at 32x32 the two digits touch in about half of a real clip's frames,
  and a frame where they merge reads as neither (a 3 over a 5 reads as an 8), so the sets above fail most real
  clips (28 % consistent) for no change of identity. `digits_apart` finds, from pixels alone, the frames whose ink
  falls into exactly as many separate pieces as a clip has digits (every digit whole, none touching); a clip is
  judged when at least two of its frames are such, and keeps its identity when all of those show the same set.
  On 1,000 real validation clips: 44 % of frames apart, 87 % of clips judged, 89 % of those keep their identity
  (the reader's own errors on whole digits, about 3 % a digit, are the rest).

Distances depend on how many clips are compared, so generated and real held-out clips are compared, in equal
numbers, with the same seeded sample of training clips; the real held-out clips' own figures are the ceiling.
A clip that repeats one frame (`repeated_frame_clips`) is the baseline: perfectly consistent, yet motionless.
For a latent model the real held-out clips are also scored through its autoencoder: the most its latents can give.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor, nn

from ..atomic import atomic_write_text
from ..config import DataConfig
from ..data import BatchStream, load_dataset
from ..data.base import data_fingerprint, data_identity
from ..errors import AigcError
from .extractors.evaluator import read_cached_net, stem_stride, write_cached_net
from .metrics.fid import FeatureStatistics, fid

__all__ = ["FrameNet", "VideoEvaluatorNet", "VideoEvaluator", "load_or_train_video_evaluator", "video_frechet_distance",
           "frame_fid", "identity_sets", "temporal_consistency", "digits_apart", "repeated_frame_clips",
           "evaluate_video", "evaluate_video_run", "VIDEO_CLIPS"]

VIDEO_CLIPS = 256  # clips `aigckit eval` draws from a video run at most: each costs T images' sampling
EVALUATOR_STEPS = 1500  # training steps of each of the video evaluator's two stages that `aigckit eval` uses
FRAMES_PER_STEP = 64  # single frames (of as many clips) a step of the frame stage trains on
MOSTLY = 0.9  # a clip is mostly consistent when at least this share of its frames shows its majority set
INK = 0.0  # a pixel of a frame in [-1, 1] is ink above mid-grey
SPECK = 4  # pieces of ink of fewer pixels are specks, not digits
ARCHITECTURE = ("video-evaluator-v2: FrameNet CNN (32-64-64-128-128-128 channels, receptive field 29 px, 128-d "
                "pooled frame feature, a sigmoid per class), trained first on single frames, then frozen + motion "
                "CNN on frame differences (16-64 channels) + temporal Conv1d (k=3, 192->128) and mean over time "
                "(128-d clip feature); heads: the clip's digits (a sigmoid per class), moves as filmed (vs frames "
                "shuffled or held); not I3D")


class FrameNet(nn.Module):
    """Six 3x3 convolutions (three of stride 2: a 29-pixel receptive field, so a feature sees a whole digit) ->
    global average pool (the 128-d frame feature) -> one logit per class (which digits the frame shows)."""

    feature_dim = 128

    def __init__(self, channels: int, num_classes: int, stem: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out, stride in ((channels, 32, stem), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1),
                                    (128, 128, 2)):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) in [-1, 1] -> (B, 128)."""
        return self.body(x).mean(dim=(2, 3))


class VideoEvaluatorNet(nn.Module):
    """Appearance (FrameNet per frame) and motion (CNN on frame differences) streams -> temporal convolution ->
    pooled clip feature; heads for the digits each frame shows, the digits the clip holds, and "moves as filmed"."""

    feature_dim = 128

    def __init__(self, channels: int, num_classes: int, stem: int = 1) -> None:
        super().__init__()
        self.frame = FrameNet(channels, num_classes, stem)  # body: frame features; head: digits in a frame
        # the motion stream sees x_t - x_{t-1}, as two-stream networks see motion (https://arxiv.org/abs/1406.2199)
        self.motion = nn.Sequential(
            nn.Conv2d(channels, 16, 3, stride=2 * stem, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        )
        dim = FrameNet.feature_dim
        self.temporal = nn.Sequential(nn.Conv1d(dim + 64, dim, 3, padding=1), nn.BatchNorm1d(dim), nn.ReLU())
        self.head = nn.Linear(dim, num_classes + 1)  # the clip's digits, then the logit of "moves as filmed"

    def forward(self, videos: Tensor) -> dict[str, Tensor]:
        """videos (B, T, C, H, W) in [-1, 1] -> frame_features (B, T, 128), frame_logits (B, T, classes),
        clip_features (B, 128), clip_logits (B, classes), order_logit (B,)."""
        B, T = videos.shape[:2]
        frame_features = self.frame.features(videos.flatten(0, 1)).view(B, T, -1)  # (B, T, 128)
        return {"frame_features": frame_features, **self.clip_outputs(videos, frame_features)}

    def clip_outputs(self, videos: Tensor, frame_features: Tensor) -> dict[str, Tensor]:
        """The heads of clips (B, T, C, H, W) given their frame features (B, T, 128): frame_logits, clip_features,
        clip_logits, order_logit."""
        B, T = videos.shape[:2]
        steps = (videos[:, 1:] - videos[:, :-1]).flatten(0, 1)  # (B*(T-1), C, H, W)
        motion = self.motion(steps).mean(dim=(2, 3)).view(B, T - 1, -1)  # (B, T-1, 64)
        series = torch.cat([frame_features[:, 1:], motion], dim=2).transpose(1, 2)  # (B, 192, T-1)
        clip_features = self.temporal(series).mean(dim=2)  # (B, 128)
        logits = self.head(clip_features)
        return {"frame_logits": self.frame.head(frame_features), "clip_features": clip_features,
                "clip_logits": logits[:, :-1], "order_logit": logits[:, -1]}


class VideoEvaluator:
    """A trained VideoEvaluatorNet with what identifies it (info: dataset, architecture, sha256, accuracies)."""

    def __init__(self, net: VideoEvaluatorNet, info: dict) -> None:
        self.net = net.eval()
        self.info = info

    @property
    def name(self) -> dict[str, Any]:
        """The extractor as results name it."""
        keys = ("dataset", "image_size", "frames", "architecture", "sha256", "held_out_accuracy",
                "frame_held_out_accuracy", "order_held_out_accuracy", "held_out_clips", "train_steps", "seed")
        return {"extractor": f"video-evaluator-{self.info['dataset']}-{self.info['image_size']}",
                **{k: self.info[k] for k in keys}}

    def check(self, videos: Tensor) -> None:
        """Raise AigcError unless videos are (N, T, C, H, W) clips of the evaluator's data."""
        expected = (self.info["frames"], self.info["channels"], self.info["image_size"], self.info["image_size"])
        if videos.ndim != 5 or tuple(videos.shape[1:]) != expected:
            shape = ", ".join(map(str, expected))
            raise AigcError(f"the {self.info['dataset']} video evaluator takes clips (N, {shape}), got "
                            f"{tuple(videos.shape)}; generate clips at the data's frames and image_size")
        if len(videos) < 2:
            raise AigcError(f"video scores need at least 2 clips, got {len(videos)}; generate more clips")

    @torch.no_grad()
    def outputs(self, videos: Tensor, batch_size: int = 64) -> dict[str, Tensor]:
        """The network's outputs (see VideoEvaluatorNet.forward) for clips (N, T, C, H, W) in [-1, 1]."""
        self.check(videos)
        parts = [self.net(chunk.float()) for chunk in videos.split(batch_size)]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def identity_sets(logits: Tensor) -> Tensor:
    """(..., classes) bool: the classes whose sigmoid is at least 0.5, and always the most probable one."""
    return (logits >= 0).scatter(-1, logits.argmax(-1, keepdim=True), True)


def _multi_hot(labels: Tensor, num_classes: int) -> Tensor:
    """labels (B, K) int -> (B, classes) float, 1 for each class a clip holds (twice a class counts once)."""
    return torch.zeros(len(labels), num_classes).scatter(1, labels, 1.0)


def _broken_in_time(videos: Tensor, chosen: Tensor, generator: torch.Generator) -> Tensor:
    """The clips where `chosen` (B,) is True with their motion broken: half of them (at random) with their frames
    in a random order (never the true one), half with one random frame held for the whole clip."""
    out = videos.clone()
    T = videos.shape[1]
    for i in torch.nonzero(chosen).flatten().tolist():
        order = torch.randperm(T, generator=generator)
        if torch.equal(order, torch.arange(T)):
            order = order.roll(1)
        out[i] = videos[i, order if torch.rand((), generator=generator) < 0.5 else order[:1].expand(T)]
    return out


def _held_out_accuracy(net: VideoEvaluatorNet, videos: Tensor, labels: Tensor, seed: int) -> dict[str, float]:
    """Exact-set accuracy of the clip and frame heads, and the motion head's accuracy (every second clip broken)."""
    truth = _multi_hot(labels, net.head.out_features - 1).bool()
    shuffled = torch.arange(len(videos)) % 2 == 1
    videos = _broken_in_time(videos, shuffled, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        parts = [net(chunk) for chunk in videos.split(64)]
    out = {key: torch.cat([p[key] for p in parts]) for key in ("clip_logits", "frame_logits", "order_logit")}
    clip_right = (identity_sets(out["clip_logits"]) == truth).all(-1)
    frame_right = (identity_sets(out["frame_logits"]) == truth[:, None]).all(-1)
    return {"held_out_accuracy": float(clip_right.float().mean()),
            "frame_held_out_accuracy": float(frame_right.float().mean()),
            "order_held_out_accuracy": float(((out["order_logit"] < 0) == shuffled).float().mean())}


def _cosine_lr(optimizer: torch.optim.Optimizer, step: int, steps: int) -> None:
    for group in optimizer.param_groups:  # from 2e-3 down to zero
        group["lr"] = 1e-3 * (1 + float(np.cos(np.pi * (step + 1) / steps)))


def _train_frames(frame: FrameNet, train: Any, steps: int, seed: int) -> None:
    """Stage 1: the frame CNN learns which digits one frame shows (a sigmoid per class) from one random frame of
    each of FRAMES_PER_STEP clips a step."""
    classes = frame.head.out_features
    optimizer = torch.optim.Adam(frame.parameters(), lr=2e-3)
    batches = BatchStream(train, min(FRAMES_PER_STEP, len(train)), seed=seed)
    for step in range(steps):
        batch = batches.batch_at(step)
        B, T = batch["videos"].shape[:2]
        picked = torch.randint(T, (B,), generator=torch.Generator().manual_seed(seed * 7919 + step))
        logits = frame.head(frame.features(batch["videos"][torch.arange(B), picked]))
        loss = F.binary_cross_entropy_with_logits(logits, _multi_hot(batch["labels"], classes))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        _cosine_lr(optimizer, step, steps)
    frame.eval()


def _train_clips(net: VideoEvaluatorNet, train: Any, steps: int, batch_size: int, seed: int) -> None:
    """Stage 2, the frame CNN frozen: the motion stream, the convolution over time and the clip heads learn the
    clip's digits and whether it moves as filmed (half of each batch has its motion broken)."""
    net.frame.requires_grad_(False)
    trained = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trained, lr=2e-3)
    batches = BatchStream(train, min(batch_size, len(train)), seed=seed + 1)
    for step in range(steps):
        batch = batches.batch_at(step)
        generator = torch.Generator().manual_seed(seed * 7919 + step)
        in_order = torch.rand(len(batch["labels"]), generator=generator) < 0.5
        videos = _broken_in_time(batch["videos"], ~in_order, generator)
        with torch.no_grad():
            frame_features = net.frame.features(videos.flatten(0, 1)).view(*videos.shape[:2], -1)
        out = net.clip_outputs(videos, frame_features)
        digits = _multi_hot(batch["labels"], out["clip_logits"].shape[1])
        loss = (F.binary_cross_entropy_with_logits(out["clip_logits"], digits)
                + F.binary_cross_entropy_with_logits(out["order_logit"], in_order.float()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        _cosine_lr(optimizer, step, steps)
    net.frame.requires_grad_(True)


def load_or_train_video_evaluator(data: DataConfig, cache_dir: Path, *, steps: int = 1500, batch_size: int = 16,
                                  seed: int = 0, held_out_clips: int = 1000) -> VideoEvaluator:
    """The video evaluator of this data (its train and val clips), trained once and then read from the cache."""
    fingerprint = data_fingerprint(data, "train", "val")
    stem = stem_stride(data.image_size)
    folder = (Path(cache_dir) / "evaluators" /
              f"video-v2-{data.name}-{data.image_size}-stem{stem}-{steps}x{batch_size}-seed{seed}-{fingerprint}")
    if (cached := read_cached_net(folder)) is not None:
        state, info = cached
        net = VideoEvaluatorNet(info["channels"], info["num_classes"], info["stem_stride"])
        net.load_state_dict(state)
        return VideoEvaluator(net, info)

    train = load_dataset(data, "train")
    if not hasattr(train, "frames"):
        raise AigcError(f"{data.name} is not a video dataset; the video evaluator trains on clips (moving-mnist, "
                        f"moving-digits)")
    if train.frames < 2:
        raise AigcError(f"{data.name} serves single frames, and the video evaluator learns motion from clips; "
                        f"evaluate the video run started from this one (model.init_from)")
    if train.labels is None:
        raise AigcError(f"{data.name} has no labels, so no video evaluator can be trained; use labelled clips")
    held_out = load_dataset(data, "val")
    if len(held_out) == 0:
        raise AigcError(f"{data.name} has no validation clips to measure the evaluator on; set data.val_fraction "
                        f"above 0")
    k, classes = train.labels.shape[1], train.num_classes
    with torch.random.fork_rng(devices=[]):  # a seeded initialisation that leaves the caller's generator alone
        torch.manual_seed(seed)
        net = VideoEvaluatorNet(train.channels, classes, stem)
    _train_frames(net.frame, train, steps, seed)
    _train_clips(net, train, steps, batch_size, seed)
    net.eval()
    rows = torch.arange(min(held_out_clips, len(held_out)))
    measured = held_out.batch(rows)
    info = {"extractor": "video-evaluator", "dataset": data.name, "image_size": data.image_size,
            "frames": train.frames, "channels": train.channels, "num_classes": classes, "digits_per_clip": k,
            "stem_stride": stem, "architecture": ARCHITECTURE, "data_fingerprint": fingerprint,
            "data": [data_identity(data, "train"), data_identity(data, "val")], "train_steps": steps,
            "batch_size": batch_size, "seed": seed, "held_out_clips": len(rows),
            **_held_out_accuracy(net, measured["videos"], measured["labels"], seed)}
    write_cached_net(folder, net, info)
    return VideoEvaluator(net, info)


def _statistics(features: Tensor) -> FeatureStatistics:
    return FeatureStatistics(features.shape[-1]).update(features)


def video_frechet_distance(generated: Tensor, real: Tensor, extractor: VideoEvaluator) -> float:
    """FVD-style distance: the Fréchet distance between the clip features of generated and real clips, both
    (N, T, C, H, W) in [-1, 1], on our video evaluator's features (not I3D's: not comparable with published FVD)."""
    return fid(_statistics(extractor.outputs(real)["clip_features"]),
               _statistics(extractor.outputs(generated)["clip_features"]))


def frame_fid(generated: Tensor, real: Tensor, extractor: VideoEvaluator) -> float:
    """Per-frame FID: the Fréchet distance between the frame features of all frames of generated and real clips."""
    return fid(_statistics(extractor.outputs(real)["frame_features"].flatten(0, 1)),
               _statistics(extractor.outputs(generated)["frame_features"].flatten(0, 1)))


def temporal_consistency(frame_logits: Tensor, judged: Tensor | None = None) -> dict[str, Tensor]:
    """Per clip, from frame_logits (N, T, classes), over the frames `judged` (N, T) bool marks (default: all):
    "consistent" (N,) bool, every judged frame shows the same identity set; "agreement" (N,) the share of judged
    frames showing the clip's majority set (the most frequent; ties to the smaller bit code); "majority" (N, classes)
    bool; "judged" (N,) bool, at least two frames judged (a clip with fewer is neither consistent nor agreeing)."""
    sets = identity_sets(frame_logits)  # (N, T, classes)
    codes = (sets.long() << torch.arange(sets.shape[-1])).sum(-1)  # (N, T): each set as a bit code
    judged = torch.ones(codes.shape, dtype=torch.bool) if judged is None else judged
    majority = torch.zeros(len(codes), dtype=torch.long)
    agreement = torch.zeros(len(codes))
    consistent = torch.zeros(len(codes), dtype=torch.bool)
    enough = judged.sum(1) >= 2
    for i in torch.nonzero(enough).flatten().tolist():
        values, counts = codes[i][judged[i]].unique(return_counts=True)  # sorted: argmax takes the smaller code
        majority[i] = values[counts.argmax()]
        agreement[i] = counts.max() / counts.sum()
        consistent[i] = len(values) == 1
    return {"consistent": consistent, "agreement": agreement, "judged": enough,
            "majority": (majority[:, None] >> torch.arange(sets.shape[-1])) & 1 == 1}


def digits_apart(videos: Tensor, digits: int) -> Tensor:
    """(N, T) bool: the frames of clips (N, T, C, H, W) in [-1, 1] whose ink falls into exactly `digits` pieces
    (pixels above mid-grey, 8-connected once grown by a pixel; specks under SPECK pixels ignored): every digit
    drawn whole and apart from the others, where the frame reader sees each one."""
    ink = (videos.float().mean(2) > INK).numpy()  # (N, T, H, W)
    grow, connect = np.zeros((3, 3, 3, 3), dtype=bool), np.zeros((3, 3, 3, 3), dtype=bool)
    grow[1, 1, 1, :] = grow[1, 1, :, 1] = True  # a pixel and its 4 neighbours in its own frame, never across frames
    connect[1, 1] = True  # 8-connected within a frame
    pieces, count = ndimage.label(ndimage.binary_dilation(ink, structure=grow), structure=connect)
    size = np.bincount(pieces.ravel(), weights=ink.ravel(), minlength=count + 1)[1:]  # ink pixels of each piece
    where = np.array([(piece[0].start, piece[1].start) for piece in ndimage.find_objects(pieces)],
                     dtype=np.int64).reshape(-1, 2)  # (clip, frame) of each piece; none in blank frames
    per_frame = np.zeros(ink.shape[:2], dtype=np.int64)
    np.add.at(per_frame, tuple(where[size >= SPECK].T), 1)
    return torch.from_numpy(per_frame == digits)


# the clip sets a video run's scores name, as reports print them ("predicted": prediction models only)
VIDEO_ROWS = {"generated": "generated", "real_held_out": "real held-out",
              "repeated_frame_baseline": "repeated-frame baseline",
              "predicted": "continued from real first frames",
              "autoencoded": "real held-out through the autoencoder"}


def repeated_frame_clips(videos: Tensor, frame: int = 0) -> Tensor:
    """The baseline: each clip (N, T, C, H, W) replaced by its frame `frame` shown T times."""
    if not -videos.shape[1] <= frame < videos.shape[1]:
        raise AigcError(f"frame {frame} is outside clips of {videos.shape[1]} frames; give 0 to T - 1")
    return videos[:, frame:frame + 1].expand_as(videos).contiguous()


def _scores(videos: Tensor, reference: dict[str, Tensor], extractor: VideoEvaluator,
            labels: Tensor | None) -> dict[str, Any]:
    """The figures of clips against the reference clips' outputs: distances, consistency over every frame and over
    the frames with the digits apart (and the label accuracy when labelled)."""
    out = extractor.outputs(videos)
    consistency = temporal_consistency(out["frame_logits"])
    scores = {"clips": len(videos),
              "fvd_style": fid(_statistics(reference["clip_features"]), _statistics(out["clip_features"])),
              "frame_fid": fid(_statistics(reference["frame_features"].flatten(0, 1)),
                               _statistics(out["frame_features"].flatten(0, 1))),
              "consistent_share": float(consistency["consistent"].float().mean()),
              "mostly_consistent_share": float((consistency["agreement"] >= MOSTLY).float().mean()),
              "frame_agreement": float(consistency["agreement"].mean())}
    apart = digits_apart(videos, extractor.info["digits_per_clip"])
    kept = temporal_consistency(out["frame_logits"], apart)
    judged = kept["judged"]
    scores |= {"digits_apart_frames": float(apart.float().mean()),
               "identity_judged_share": float(judged.float().mean()),
               "identity_kept_share": float(kept["consistent"][judged].float().mean()) if judged.any() else None}
    if labels is not None:  # the majority set is the clip's digits
        truth = _multi_hot(labels, out["frame_logits"].shape[-1]).bool()
        scores["majority_is_labels"] = float((consistency["majority"] == truth).all(-1).float().mean())
    return scores


def evaluate_video(generated: Tensor, data: DataConfig, cache_dir: Path, *, labels: Tensor | None = None,
                   seed: int = 0, steps: int = 1500, evaluator: VideoEvaluator | None = None,
                   predicted: Tensor | None = None, predicted_labels: Tensor | None = None,
                   autoencode: Callable[[Tensor], Tensor] | None = None) -> dict[str, Any]:
    """The "video" section of a video run's metrics: FVD-style distance, per-frame FID and temporal consistency of
    generated clips (N, T, C, H, W) in [-1, 1], of as many real held-out (test) clips (the ceiling) and of the
    generated clips with their first frame repeated (the baseline), all against one seeded sample of as many
    training clips. labels: (N, K) the digits the clips were asked for, when conditional. evaluator: the video
    evaluator to use (default: this data's, trained for `steps` steps, from the cache). predicted: clips a
    prediction model continued from real first frames, scored the same way ("predicted"), predicted_labels: the
    digits of those frames. autoencode: a latent model's encode-decode of clips; the real held-out clips through it
    are scored too ("autoencoded"): what the model could reach if it generated latents perfectly."""
    extractor = evaluator or load_or_train_video_evaluator(data, cache_dir, steps=steps)
    extractor.check(generated)
    held_out, train = load_dataset(data, "test"), load_dataset(data, "train")
    n = min(len(generated), len(held_out), len(train))
    if n < len(generated):
        raise AigcError(f"{data.name} has {min(len(held_out), len(train))} real clips to compare with, fewer than "
                        f"the {len(generated)} generated; evaluate at most that many clips")
    if labels is not None and tuple(labels.shape) != (n, extractor.info["digits_per_clip"]):
        raise AigcError(f"labels must be (N, K) = ({n}, {extractor.info['digits_per_clip']}), one class per digit "
                        f"of each generated clip, got {tuple(labels.shape)}")
    rng = np.random.default_rng(seed)
    real = held_out.batch(torch.from_numpy(np.sort(rng.permutation(len(held_out))[:n])))
    reference = extractor.outputs(train.batch(torch.from_numpy(np.sort(rng.permutation(len(train))[:n])))["videos"])
    return {"extractor": extractor.name, "reference": f"{n} training clips (seed {seed})",
            "generated": _scores(generated, reference, extractor, labels),
            "real_held_out": _scores(real["videos"], reference, extractor, real.get("labels")),
            "repeated_frame_baseline": _scores(repeated_frame_clips(generated), reference, extractor, labels),
            **({"predicted": _scores(predicted, reference, extractor, predicted_labels)}
               if predicted is not None else {}),
            **({"autoencoded": _scores(autoencode(real["videos"]), reference, extractor, real.get("labels"))}
               if autoencode is not None else {})}


def evaluate_video_run(run_dir: Path, pipeline: Any, data: DataConfig, cache_dir: Path, *, n: int, batch_size: int,
                       seed: int, options: dict[str, Any], sampler: dict[str, Any] | None) -> dict[str, Any]:
    """`aigckit eval` on a video run: n clips drawn (a conditional model for the validation clips' labels, in
    order), scored by evaluate_video, with sampling seconds per clip and a GIF of the first 16; written to
    run_dir/eval/metrics.json."""
    started = time.perf_counter()
    data = dataclasses.replace(data, image_size=pipeline.config.image_size)
    n = min(n, VIDEO_CLIPS, len(load_dataset(data, "test")))
    labels = None
    val = load_dataset(data, "val")
    if pipeline.labels_per_video:
        labels = val.labels[torch.arange(n) % len(val)]
    clips = []
    for i, start in enumerate(range(0, n, batch_size)):
        chunk = labels[start:start + batch_size] if labels is not None else None
        clips.append(pipeline.sample(min(batch_size, n - start), labels=chunk, seed=seed + i, **options).cpu())
    generated = torch.cat(clips)
    sampling = time.perf_counter() - started
    predicted = predicted_labels = None
    if pipeline.config.given_first_frame:  # a prediction model also continues the validation clips' first frames
        real = val.batch(torch.arange(n) % len(val))
        predicted_labels = real.get("labels")
        predicted = torch.cat([pipeline.sample(min(batch_size, n - start), seed=seed + i, **options,
                                               first_frame=real["videos"][start:start + batch_size, 0]).cpu()
                               for i, start in enumerate(range(0, n, batch_size))])
    out_dir = Path(run_dir) / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    gif = pipeline.save_video(generated[:16], out_dir / "samples.gif")
    model = pipeline.model
    autoencode = None
    if getattr(model, "autoencoder", None) is not None:  # latent diffusion: its autoencoder's ceiling, scored too
        def autoencode(videos: Tensor) -> Tensor:
            with torch.no_grad():
                return torch.cat([model.from_latents(model.to_latents(chunk)).clamp(-1, 1)
                                  for chunk in videos.split(batch_size)])
    result = {"run": str(run_dir), "checkpoint": str(pipeline.checkpoint), "family": pipeline.family.name,
              "model": pipeline.config.name, "dataset": data.name, "image_size": data.image_size,
              "frames": int(generated.shape[1]), "n_samples": n, "seed": seed, "sampler": sampler,
              "sampling_seconds_per_clip": sampling / n, "samples_gif": str(gif),
              "video": evaluate_video(generated, data, cache_dir, labels=labels, seed=seed, steps=EVALUATOR_STEPS,
                                      predicted=predicted, predicted_labels=predicted_labels, autoencode=autoencode)}
    result["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result
