"""Video diffusion on Moving MNIST (issue 16): the preset trained for a fixed wall time, then scored on whether its
clips keep their digits and move like the real ones.

    python benchmarks/video.py [--minutes 20] [--n 256] [--data-root ../shared/data/mnist] [--runs runs/video]
                               [--config configs/diffusion-moving-mnist.yaml] [--pretrain-minutes 0]
                               [--pretrain-config configs/diffusion-moving-mnist-frames.yaml] [--speed-clips 16]
                               [--results-dir benchmarks/results] [--gif docs/video-samples.gif] [--name video]

1. The preset (configs/diffusion-moving-mnist.yaml: 20-frame clips of two bouncing digits, 32x32 frames,
   conditioned on the two digits' classes) trains --minutes of wall time (train.max_minutes) into
   <runs>/<preset> (a run trained with the same settings before is not trained again). With --pretrain-minutes M,
   the one-frame preset (configs/diffusion-moving-mnist-frames.yaml: the same network without temporal layers, on
   single frames) trains M of those minutes first, and the video preset the rest from its weights
   (model.init_from), into <runs>/<preset>-from-<frames preset>.
2. `evaluate_run` draws --n clips (at most evaluation.video.VIDEO_CLIPS) for the validation clips' labels, with
   the preset's sampler, steps and guidance, and scores them with evaluation.video.evaluate_video against one
   seeded sample of as many training clips: the FVD-style distance (a Fréchet distance on the clip features of our
   own video evaluator, trained once on this data's training clips: not I3D, so not comparable with published
   FVD), per-frame FID (the same evaluator's frame features), the share of clips whose digit identity is the same
   in every frame, the share whose majority identity is shown in at least 90 % of the frames (digits that cross
   hide each other), the mean share of a clip's frames that show its majority identity, whether that majority
   is the digits asked for, and the share of clips that keep their identity over the frames whose digits are apart
   (evaluation.video.digits_apart; clips with two or more such frames). The same for as many real held-out
   (test) clips (the ceiling) and for the baseline that repeats one generated frame: evaluate_video builds it from
   the generated clips themselves (each clip's first frame shown for the whole clip;
   repeated_frame_clips(generated)), so it is consistent by construction and
   motionless, and the video evaluator was trained to tell held frames from motion. A preset trained with
   model.given_first_frame also continues the first frames of as many validation clips (no labels: the frame
   alone), scored the same way; "majority = labels" is then whether the clip keeps the frame's digits. A latent
   preset's real held-out clips are also scored through its autoencoder (the ceiling of perfect latents).
3. Sampling time: one batch of --speed-clips clips timed on its own (the eval's own figure also counts loading
   the test clips), per clip and per second of video at the GIF's frame rate (aigckit.video.save_gif's default
   fps, 10: a 20-frame clip is 2 s of video).

Targets (issue 16): digit identity consistent across frames in >= 90 % of generated clips (judged on the frames
whose digits are apart, where a reader can see both: real held-out clips reach about 92 %); FVD-style distance within
2x of the real held-out clips' own; both beside the repeated-frame baseline. Writes
<results-dir>/<name>.{json,md} and <gif> (the eval's GIF of the first 16 clips; default docs/video-samples.gif).
Time nothing else on the machine while it runs.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import shutil
import time
from pathlib import Path

import torch

import timing
from aigckit.atomic import atomic_write_text
from aigckit.config import load_config, to_dict
from aigckit.evaluation.evaluate import evaluate_run
from aigckit.machine import cpu_name
from aigckit.pipelines import load
from aigckit.training import train
from aigckit.video import save_gif
from timing import trained_for, write_results

ROOT = Path(__file__).parents[1]
CONFIG = ROOT / "configs" / "diffusion-moving-mnist.yaml"
FRAMES_CONFIG = ROOT / "configs" / "diffusion-moving-mnist-frames.yaml"
FPS = float(inspect.signature(save_gif).parameters["fps"].default)  # the GIF's (and MP4's) frame rate: 10
CONSISTENT_TARGET = 0.90  # share of generated clips whose frames with the digits apart show one digit set
FVD_RATIO_TARGET = 2.0  # generated FVD-style distance at most this many times the real held-out clips' own


def trained(config_path: Path, minutes: float, data_root: str, runs: Path, *, init_from: Path | None = None
            ) -> tuple[Path, dict, str, bool]:
    """The preset trained for `minutes` (reused when trained from the same config before), its last training
    state (step, elapsed_seconds), the sha256 of its config and whether it was trained now; with init_from, started
    from that run's weights (model.init_from; a latent preset also takes that run's autoencoder) in a run folder of
    its own."""
    overrides = [f"data.root={data_root}", "train.max_steps=1000000", f"train.max_minutes={minutes}",
                 "train.sample_every=1000000"]
    if init_from is not None:
        overrides.append(f"model.init_from={init_from}")
        if load_config(config_path, []).model.latent_channels is not None:
            overrides.append("model.autoencoder_steps=0")  # the latent frames run's autoencoder, as trained
    config = load_config(config_path, overrides)
    run_dir = runs / (config_path.stem + ("" if init_from is None else f"-from-{init_from.name}"))
    # a run trained before is scored with the preset's sampling settings (main), so they may differ from the run's
    trained_now = trained_for(run_dir, config, sampling_may_differ=True) < minutes * 60 - 1
    if trained_now:
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"== {config_path.stem}: training for {minutes:g} min", flush=True)
        train(config, run_dir, show_progress=False)
    state = json.loads(sorted((run_dir / "checkpoints").glob("step-*"))[-1].joinpath("training_state.json").read_text())
    digest = hashlib.sha256(json.dumps(to_dict(config), sort_keys=True).encode()).hexdigest()
    return run_dir, state, digest, trained_now


def sampling_settings(config_path: Path) -> dict:
    """The preset's sampler, steps, guidance and frame lag: a run trained before is scored with these, whatever
    it was trained with (they change what is drawn, not what was trained)."""
    model = load_config(config_path, []).model
    return {"sampler": model.sampler, "steps": model.sampling_steps, "guidance": model.guidance,
            "frame_lag": model.frame_lag}


def sampling_speed(run_dir: Path, clips: int, settings: dict) -> float:
    """Seconds per clip of one batch of `clips` clips (the preset's sampling settings; labels cycling through the
    classes for a conditional model)."""
    pipeline = load(run_dir)
    k = pipeline.labels_per_video
    labels = (torch.arange(clips * k) % pipeline.config.num_classes).view(clips, k) if k else None
    started = time.perf_counter()
    pipeline.sample(clips, labels=labels, seed=0, **settings)
    return (time.perf_counter() - started) / clips


def _prediction_line(video: dict, real: dict) -> list[str]:
    """The summary of clips continued from real first frames (a prediction preset), or nothing."""
    if "predicted" not in video:
        return []
    row = video["predicted"]
    return [f"- Continued from real first frames: consistent in {row['consistent_share']:.1%} of clips, the frame's "
            f"digits kept (majority) in {row['majority_is_labels']:.1%}, FVD-style {row['fvd_style']:.2f} "
            f"({row['fvd_style'] / real['fvd_style']:.1f}x real)."]


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _share(value: float | None) -> str:
    """A share as a percentage; n/a where no clip could be judged."""
    return "n/a" if value is None else f"{value:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--n", type=int, default=256, help="clips to generate and score (at most 256)")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "video")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the video preset (its file name names the run)")
    parser.add_argument("--pretrain-minutes", type=float, default=0.0,
                        help="of --minutes, those spent first training the image layers on single frames")
    parser.add_argument("--pretrain-config", type=Path, default=FRAMES_CONFIG,
                        help="the one-frame preset those minutes train (its sizes must be the video preset's)")
    parser.add_argument("--speed-clips", type=int, default=16, help="clips in the timed sampling batch")
    parser.add_argument("--results-dir", type=Path, default=timing.RESULTS)
    parser.add_argument("--gif", type=Path, default=ROOT / "docs" / "video-samples.gif")
    parser.add_argument("--name", default="video", help="results file name: <results-dir>/<name>.{json,md}")
    args = parser.parse_args()
    timing.RESULTS = args.results_dir  # write_results writes there
    preset = args.config.stem

    pretrained = None
    if args.pretrain_minutes:  # the image layers first, on single frames; then the clips for the minutes left
        frames_dir, frames_state, _, _ = trained(args.pretrain_config, args.pretrain_minutes, args.data_root, args.runs)
        pretrained = {"config": str(args.pretrain_config), "minutes": args.pretrain_minutes,
                      "steps": int(frames_state["step"]), "run": str(frames_dir)}
    run_dir, state, config_sha256, trained_now = trained(args.config, args.minutes - args.pretrain_minutes,
                                                         args.data_root, args.runs,
                                                         init_from=None if pretrained is None else frames_dir)
    steps = int(state["step"])
    print(f"== {preset}: scoring {args.n} clips", flush=True)
    settings = sampling_settings(args.config)
    metrics = evaluate_run(run_dir, n=args.n, with_likelihood=False, **settings)
    video = metrics["video"]
    generated, real, baseline = video["generated"], video["real_held_out"], video["repeated_frame_baseline"]
    args.gif.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(metrics["samples_gif"], args.gif)
    print(f"== {preset}: timing a batch of {args.speed_clips} clips", flush=True)
    per_clip = sampling_speed(run_dir, args.speed_clips, settings)
    frames = metrics["frames"]
    clip_seconds = frames / FPS  # seconds of video in one clip at the GIF's frame rate
    per_video_second = per_clip / clip_seconds

    fvd_ratio = generated["fvd_style"] / real["fvd_style"]
    targets = {
        "identity_kept_share": {"target": f">= {CONSISTENT_TARGET:.0%} of generated clips (judged on the frames "
                                          f"whose digits are apart)",
                                "generated": generated["identity_kept_share"],
                                "real_held_out": real["identity_kept_share"],
                                "repeated_frame_baseline": baseline["identity_kept_share"],
                                "met": (generated["identity_kept_share"] or 0.0) >= CONSISTENT_TARGET},
        "fvd_style_vs_real": {"target": f"<= {FVD_RATIO_TARGET:g}x the real held-out clips' own",
                              "generated_ratio": fvd_ratio,
                              "repeated_frame_baseline_ratio": baseline["fvd_style"] / real["fvd_style"],
                              "met": fvd_ratio <= FVD_RATIO_TARGET}}
    extractor = video["extractor"]
    results = {"machine": cpu_name(), "threads": torch.get_num_threads(), "preset": preset,
               "config": str(args.config), "config_sha256": config_sha256, "train_minutes": args.minutes,
               "pretrained_on_frames": pretrained, "train_steps": steps, "train_seconds": state.get("elapsed_seconds"),
               "trained_now": trained_now,
               "n": metrics["n_samples"], "frames": frames, "image_size": metrics["image_size"],
               "dataset": metrics["dataset"], "sampler": metrics["sampler"], "extractor": extractor,
               "reference": video["reference"], "generated": generated, "real_held_out": real,
               "repeated_frame_baseline": baseline, "predicted": video.get("predicted"),
               "autoencoded": video.get("autoencoded"),
               "repeated_frame_baseline_source": "generated clips, each its first frame repeated "
                                                 "(evaluate_video: repeated_frame_clips(generated))",
               "targets": targets, "fps": FPS, "speed_clips": args.speed_clips, "seconds_per_clip": per_clip,
               "seconds_per_video_second": per_video_second,
               "eval_sampling_seconds_per_clip": metrics["sampling_seconds_per_clip"],
               "eval_seconds": metrics["seconds"], "gif": str(args.gif)}

    sampler = ", ".join(f"{k} {v}" for k, v in (metrics["sampler"] or {}).items())
    size = metrics["image_size"]
    schedule = (f"{steps:,} steps in {args.minutes:g} min" if pretrained is None else
                f"{pretrained['steps']:,} steps on single frames ({Path(pretrained['config']).stem}) in "
                f"{args.pretrain_minutes:g} min, then {steps:,} on clips in {args.minutes - args.pretrain_minutes:g}")
    table = [f"{preset}: {schedule} ({cpu_name()}, {torch.get_num_threads()} threads); "
             f"{metrics['n_samples']} clips of {frames} frames at {size}x{size} ({metrics['dataset']}), {sampler}; "
             f"{per_clip:.2f} s per clip, {per_video_second:.2f} s per video second (at {FPS:g} fps, the GIF's: a "
             f"clip is {clip_seconds:g} s; a batch of {args.speed_clips}). Scored against {video['reference']} by "
             f"our own video evaluator ({extractor['extractor']}: held-out accuracy {extractor['held_out_accuracy']:.2f}"
             f" clip / {extractor['frame_held_out_accuracy']:.2f} frame / {extractor['order_held_out_accuracy']:.2f} "
             f"motion), not I3D: FVD-style figures are not comparable with published FVD.", "",
             f"- Digit identity consistent across frames in >= {CONSISTENT_TARGET:.0%} of clips, judged on the "
             f"frames whose digits are apart (in clips with two or more such frames): "
             f"{_share(generated['identity_kept_share'])} of generated clips "
             f"({generated['identity_judged_share']:.1%} judged), {_met(targets['identity_kept_share']['met'])} "
             f"(real held-out {_share(real['identity_kept_share'])}, {real['identity_judged_share']:.1%} judged; "
             f"repeated-frame baseline {_share(baseline['identity_kept_share'])}, consistent by construction). "
             f"The same set in every frame: {generated['consistent_share']:.1%} generated, "
             f"{real['consistent_share']:.1%} real held-out; in at least 90% of the frames: "
             f"{generated['mostly_consistent_share']:.1%} generated, {real['mostly_consistent_share']:.1%} real "
             f"held-out.",
             f"- FVD-style distance within {FVD_RATIO_TARGET:g}x of the real held-out clips' own: "
             f"{generated['fvd_style']:.2f} vs {real['fvd_style']:.2f} ({fvd_ratio:.1f}x), "
             f"{_met(targets['fvd_style_vs_real']['met'])} (repeated-frame baseline {baseline['fvd_style']:.2f}, "
             f"{targets['fvd_style_vs_real']['repeated_frame_baseline_ratio']:.1f}x).", *_prediction_line(video, real),
             "",
             "| clips | FVD-style | x real | per-frame FID | identity kept (digits apart; judged) | consistent clips "
             "| mostly consistent (>= 90% of frames) | frame agreement | majority = labels |",
             "|---|---|---|---|---|---|---|---|---|"]
    names = {"generated": "generated", "real_held_out": "real held-out (test)",
             "repeated_frame_baseline": "repeated-frame baseline (each generated clip's first frame, repeated)",
             "predicted": "continued from real first frames (validation clips' frame 0, no labels)",
             "autoencoded": "real held-out through the autoencoder (a latent model's ceiling)"}
    for key, name in names.items():
        if key not in video:
            continue
        row = video[key]
        majority = row.get("majority_is_labels")
        table.append(f"| {name} | {row['fvd_style']:.2f} | {row['fvd_style'] / real['fvd_style']:.1f} | "
                     f"{row['frame_fid']:.2f} | {_share(row['identity_kept_share'])} "
                     f"({row['identity_judged_share']:.1%}) | {row['consistent_share']:.3f} | "
                     f"{row['mostly_consistent_share']:.3f} | "
                     f"{row['frame_agreement']:.3f} | "
                     f"{'-' if majority is None else f'{majority:.3f}'} |")
    write_results(args.name, results, table)
    atomic_write_text(run_dir / "benchmark.json", json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
