"""Spoken digits (issue 15): each generator trained for the same wall time on FSDD log-mels, then scored as heard.

    python benchmarks/audio.py [--minutes 20] [--n 1000] [--models diffusion,dcgan] [--data-root ../shared/data/fsdd]
                               [--runs runs/audio] [--vocoder-clips 300] [--name audio]

1. Each preset (configs/<model>-fsdd.yaml) trains --minutes of wall time (train.max_minutes) into <runs>/<model>-fsdd;
   `evaluate_run` then scores --n generated clips as heard (Griffin-Lim, read back as the loader reads a file): the
   spoken-digit evaluator's accuracy on the digit asked for (overall and per digit), the classifier score and the
   FAD-style distance, beside the ceilings (the real test split, its Griffin-Lim resynthesis, 1,000 training clips).
   A model trained and scored with the same settings before is not trained again (<run>/benchmark.json). The
   generated clips and the real test split are then scored again as heard through each trained vocoder: the
   learned mel inverter and the Vocos-style vocoder (`aigckit eval RUN --vocoder learned|vocos`).
2. Generation time per second of audio: 100 clips (digits 0-9 in turn) in one batch, the model's sampling and
   Griffin-Lim timed apart.
3. Vocoders on real audio: the test split's clips, stored as 8-bit log-mel images, turned back into waveforms by
   least-squares mel inversion and Griffin-Lim at several iteration counts (and, as the bound, Griffin-Lim from the
   true linear magnitude), by the learned mel inverter with Griffin-Lim and by the Vocos-style vocoder
   (aigckit.audio.vocoder, each trained once on the training split and cached): spectral convergence and
   log-spectral distance against the real clip, and the spoken-digit evaluator's accuracy on what each makes, read
   back as the loader reads a file. `--models none` measures only this.

Writes benchmarks/results/audio.{json,md} (--name: another name). Time nothing else on the machine while it runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from pathlib import Path

import torch

from aigckit.atomic import atomic_write_text
from aigckit.audio.mel import (
    griffin_lim,
    log_spectral_distance,
    mel_to_waveform,
    pixels_to_log_mel,
    power_spectrogram,
    spectral_convergence,
)
from aigckit.audio.vocoder import load_or_train_vocoder
from aigckit.cache import default_cache_dir
from aigckit.config import DataConfig, load_config, to_dict
from aigckit.data import load_dataset
from aigckit.data.audio import fitted_to_pixels, mel_spec, split_waves, waves_to_pixels
from aigckit.data.transforms import to_model_range
from aigckit.evaluation.evaluate import evaluate_run
from aigckit.evaluation.extractors import load_or_train_evaluator
from aigckit.machine import cpu_name
from aigckit.pipelines import load
from aigckit.pipelines.speech import images_to_waves
from aigckit.training import train
from timing import trained_for

ROOT = Path(__file__).parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ROWS = ("generated_as_heard", "generated_spectrograms", "real_test", "real_test_griffin_lim", "real_train_1000")
ITERATIONS = (8, 32, 64, 128)
THROUGH = {"learned": "through_learned_inverter", "vocos": "through_vocos"}  # result keys of the trained vocoders


def trained_and_scored(model: str, minutes: float, n: int, data_root: str, runs: Path) -> dict:
    """Train configs/<model>-fsdd.yaml for `minutes` and score n clips; reused when made with the same settings."""
    overrides = [f"data.root={data_root}", "train.max_steps=1000000", f"train.max_minutes={minutes}",
                 "train.sample_every=1000000"]
    config = load_config(ROOT / "configs" / f"{model}-fsdd.yaml", overrides)
    settings = {"config_sha256": hashlib.sha256(json.dumps(to_dict(config), sort_keys=True).encode()).hexdigest(),
                "n": n}
    run_dir = runs / f"{model}-fsdd"
    stored = run_dir / "benchmark.json"
    if stored.is_file() and json.loads(stored.read_text())["settings"] == settings:
        result = json.loads(stored.read_text())["result"]
        missing = [name for name, key in THROUGH.items() if key not in result]  # stored before these were measured
        for name in missing:
            result[THROUGH[name]] = through_vocoder(name, model, run_dir, n)
        if missing:
            atomic_write_text(stored, json.dumps({"settings": settings, "result": result}, indent=2) + "\n")
        return result
    if trained_for(run_dir, config) < minutes * 60 - 1:
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"== {model}: training for {minutes} min", flush=True)
        train(config, run_dir, show_progress=False)
    state = json.loads(sorted((run_dir / "checkpoints").glob("step-*"))[-1].joinpath("training_state.json").read_text())
    print(f"== {model}: {state['step']} steps; scoring {n} clips", flush=True)
    metrics = evaluate_run(run_dir, n=n, with_likelihood=False)
    result = {"model": model, "train_steps": int(state["step"]), "train_minutes": minutes, "n": n,
              "extractor": metrics["extractor"], "evaluator_held_out_accuracy": metrics["evaluator_held_out_accuracy"],
              "sampler": metrics["sampler"], "sampling_precision": metrics["sampling_precision"],
              **{row: metrics["audio"][row] for row in ROWS}, "eval_seconds": metrics["seconds"],
              "speed": generation_speed(run_dir)}
    for name, key in THROUGH.items():
        result[key] = through_vocoder(name, model, run_dir, n)
    atomic_write_text(stored, json.dumps({"settings": settings, "result": result}, indent=2) + "\n")
    print(json.dumps(result["generated_as_heard"]["accuracy"]), flush=True)
    return result


def through_vocoder(name: str, model: str, run_dir: Path, n: int) -> dict:
    """The generated clips and the real test split scored as heard through the trained vocoder `name`."""
    print(f"== {model}: scoring {n} clips through the {name} vocoder", flush=True)
    audio = evaluate_run(run_dir, n=n, with_likelihood=False, vocoder=name)["audio"]
    return {"vocoder": audio["vocoder"], "generated_as_heard": audio["generated_as_heard"],
            "real_test": audio["real_test_griffin_lim"]}


def generation_speed(run_dir: Path, clips: int = 100) -> dict:
    """Seconds of computing per second of audio: the model's sampling and Griffin-Lim (64 iterations) apart."""
    pipeline = load(run_dir)
    spec = mel_spec(pipeline.config.image_size)
    labels = torch.arange(clips) % 10
    started = time.perf_counter()
    with torch.no_grad():
        images = pipeline.sample(clips, labels=labels, seed=0)
    sampled = time.perf_counter()
    images_to_waves(images, spec)
    finished = time.perf_counter()
    audio_seconds = clips * spec.length / spec.rate
    return {"clips": clips, "sampling_s_per_audio_s": (sampled - started) / audio_seconds,
            "griffin_lim_s_per_audio_s": (finished - sampled) / audio_seconds,
            "total_s_per_audio_s": (finished - started) / audio_seconds}


def vocoders(data_root: str, clips: int) -> list[dict]:
    """Griffin-Lim from the stored log-mel images of real test clips (and from their true magnitude) against the
    clips themselves."""
    data = DataConfig(name="fsdd", root=data_root, image_size=64, download=False)
    spec = mel_spec(64)
    waves = split_waves(data, "test", spec)[:clips]
    real = torch.from_numpy(waves)
    magnitude = power_spectrogram(real, spec).sqrt()
    stored = pixels_to_log_mel(fitted_to_pixels(waves, spec))  # the 8-bit images a model learns
    labels = load_dataset(data, "test").labels[:clips]
    evaluator = load_or_train_evaluator(data, default_cache_dir())
    trained = {}
    for name in THROUGH:
        started = time.perf_counter()
        trained[name] = load_or_train_vocoder(data, spec, default_cache_dir(), name=name)
        print(f"== {trained[name].title}: {trained[name].info['train_steps']} steps on "
              f"{trained[name].info['train_clips']} clips (trained or read from the cache in "
              f"{time.perf_counter() - started:.0f} s)", flush=True)
    rows = []
    cases = ([("Griffin-Lim", "log-mel image", i) for i in ITERATIONS]
             + [("learned + Griffin-Lim", "log-mel image", 64), ("Vocos-style", "log-mel image", None),
                ("Griffin-Lim", "true magnitude", 64)])
    for vocoder, source, iterations in cases:
        started = time.perf_counter()
        if source == "true magnitude":
            waves = griffin_lim(magnitude, spec, iterations=iterations)
        elif vocoder == "Griffin-Lim":
            waves = mel_to_waveform(stored, spec, iterations=iterations)
        elif vocoder == "Vocos-style":
            waves = trained["vocos"].waveform(stored)
        else:
            waves = trained["learned"].waveform(stored, iterations=iterations)
        seconds = time.perf_counter() - started
        recognised = evaluator.features_and_logits(read_back(waves, spec))[1].argmax(1) == labels
        rows.append({"vocoder": vocoder, "from": source, "iterations": iterations, "clips": len(real),
                     "spectral_convergence": float(spectral_convergence(waves, magnitude, spec).mean()),
                     "log_spectral_distance_db": float(log_spectral_distance(waves, real, spec).mean()),
                     "ms_per_clip": 1000 * seconds / len(real), "evaluator_accuracy": float(recognised.float().mean())})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def read_back(waves: torch.Tensor, spec) -> torch.Tensor:
    """Waveforms as the loader makes them from a file: log-mel images in [-1, 1]."""
    return to_model_range(waves_to_pixels(list(waves.numpy()), spec))


def markdown(results: dict) -> str:
    """The README's tables."""
    lines = model_tables(results) if results["models"] else []
    lines += ["| vocoder (real test clips) | from | iterations | spectral convergence | log-spectral distance dB | "
              "ms per clip | evaluator accuracy |", "|---|---|---|---|---|---|---|"]
    for v in results["vocoders"]:
        lines.append(f"| {v['vocoder']} | {v['from']} | {v['iterations'] or '—'} | {v['spectral_convergence']:.3f} | "
                     f"{v['log_spectral_distance_db']:.2f} | {v['ms_per_clip']:.1f} | {v['evaluator_accuracy']:.3f} |")
    return "\n".join(lines) + "\n"


def model_tables(results: dict) -> list[str]:
    """The tables of the generated clips, the real ceilings and the generation speed."""
    lines = [f"Each model trained {results['minutes']} min on {results['device']}, {results['n']} clips scored as "
             "heard (least squares + Griffin-Lim, 64 iterations, unless the row names a trained vocoder); the "
             "spoken-digit evaluator's features and softmax.", "",
             "| clips | steps | accuracy (digit asked for) | worst digit | classifier score | FAD-style distance |",
             "|---|---|---|---|---|---|"]
    for r in results["models"]:
        for row, name in (("generated_as_heard", f"{r['model']}, as heard"),
                          ("generated_spectrograms", f"{r['model']}, its spectrograms")):
            accuracy = r[row]["accuracy"]
            worst = min((v, k) for k, v in accuracy.items() if k != "overall")
            lines.append(f"| {name} | {r['train_steps']} | {accuracy['overall']:.3f} | {worst[1]}: {worst[0]:.2f} | "
                         f"{r[row]['classifier_score']:.2f} | {r[row]['frechet_distance']:.2f} |")
        for vocoder, key in THROUGH.items():
            heard = r[key]["generated_as_heard"]
            worst = min((v, k) for k, v in heard["accuracy"].items() if k != "overall")
            lines.append(f"| {r['model']}, as heard through {vocoder} | {r['train_steps']} | "
                         f"{heard['accuracy']['overall']:.3f} | {worst[1]}: {worst[0]:.2f} | "
                         f"{heard['classifier_score']:.2f} | {heard['frechet_distance']:.2f} |")
    first = results["models"][0]
    for scores, name in ((first["real_test"], "real test split (300)"),
                         (first["real_test_griffin_lim"], "real test, Griffin-Lim"),
                         *((first[key]["real_test"], f"real test, {vocoder}") for vocoder, key in THROUGH.items()),
                         (first["real_train_1000"], "1,000 real training clips")):
        accuracy = scores["accuracy"]
        worst = min((v, k) for k, v in accuracy.items() if k != "overall")
        lines.append(f"| {name} | — | {accuracy['overall']:.3f} | {worst[1]}: {worst[0]:.2f} | "
                     f"{scores['classifier_score']:.2f} | {scores['frechet_distance']:.2f} |")
    lines += ["", "| model | sampling s per audio s | Griffin-Lim s per audio s | total |", "|---|---|---|---|"]
    for r in results["models"]:
        s = r["speed"]
        lines.append(f"| {r['model']} | {s['sampling_s_per_audio_s']:.3f} | {s['griffin_lim_s_per_audio_s']:.3f} | "
                     f"{s['total_s_per_audio_s']:.3f} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--models", default="diffusion,dcgan", help="comma-separated presets, or none")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data" / "fsdd"))
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "audio")
    parser.add_argument("--vocoder-clips", type=int, default=300)
    parser.add_argument("--name", default="audio", help="results go to benchmarks/results/<name>.{json,md}")
    args = parser.parse_args()
    results = {"device": cpu_name(), "threads": torch.get_num_threads(), "minutes": args.minutes, "n": args.n,
               "command": "python benchmarks/audio.py " + " ".join(f"--{k.replace('_', '-')} {v}"
                                                                    for k, v in vars(args).items()),
               "vocoders": vocoders(args.data_root, args.vocoder_clips),
               "models": [trained_and_scored(m, args.minutes, args.n, args.data_root, args.runs)
                          for m in args.models.split(",") if m != "none"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{args.name}.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(RESULTS / f"{args.name}.md", markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
