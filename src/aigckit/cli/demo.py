"""`aigckit demo`: the main job — train every family on bundled data and show what each one makes."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Annotated, Optional

import torch
import typer

from .common import err_console, user_errors

__all__ = ["demo_command"]

PER_CLASS = 10
PROMPT = "The assert statement"

# (preset, what it is, overrides). Each stage trains for its steps or its time cap, whichever comes first: the caps
# (5.75 minutes in all) keep the whole demo under 8 minutes on 2 cores of the slowest CPU we know (AVX2 only, fp32),
# where they cut the DCGAN, the VAE and the diffusion model short; faster machines train every step sooner.
STAGES: list[tuple[str, str, list[str]]] = [
    ("dcgan-digits", "a class-conditional DCGAN", ["train.max_steps=1500", "train.max_minutes=1"]),
    ("vae-digits", "a class-conditional convolutional VAE", ["train.max_steps=1500", "train.max_minutes=0.5"]),
    ("mlp-vae-mnist", "the worked-example MLP VAE (2-D latent) on the digits",
     ["data.name=digits", "data.image_size=8", "train.max_steps=2000", "train.max_minutes=0.25"]),
    ("diffusion-digits", "a class-conditional diffusion model", ["train.max_steps=1500", "train.max_minutes=2"]),
    ("gpt-pydoc", "a character-level GPT on Python's help texts", ["train.max_minutes=1"]),
]
# spoken digits need FSDD: $AIGCKIT_DATA, the development copy beside the repository, or a download
AUDIO_STAGE = ("diffusion-fsdd", "a class-conditional diffusion model on spoken digits (FSDD, 32x32 log-mels)",
               ["data.image_size=32", "train.max_steps=1500", "train.max_minutes=0.75"])
NUMBER = "4 0 7 2"


def _train(configs: Path, out: Path, stage: tuple[str, str, list[str]], quick: list[str]) -> Path:
    from ..config import load_config
    from ..training import train

    name, what, overrides = stage
    config = load_config(configs / f"{name}.yaml", [*overrides, *quick])
    run_dir = out / name
    shutil.rmtree(run_dir, ignore_errors=True)
    err_console.print(f"[bold]training[/] {what} -> {run_dir}")
    started = time.monotonic()
    train(config, run_dir)
    err_console.print(f"  trained in {time.monotonic() - started:.0f} s")
    return run_dir


def _class_grid(pipeline, path: Path, **options) -> Path:
    labels = [c for c in range(pipeline.num_classes) for _ in range(PER_CLASS)]
    return pipeline.save_grid(pipeline.sample(len(labels), labels=labels, seed=0, **options), path, nrow=PER_CLASS)


@user_errors
def demo_command(
    out: Annotated[Path, typer.Option(help="folder for the demo's runs and pictures")] = Path("runs/demo"),
    configs: Annotated[Path, typer.Option(help="folder holding the presets")] = Path("configs"),
    steps: Annotated[Optional[int], typer.Option(help="override every run's train.max_steps (a quick look)")] = None,
) -> None:
    """Train a DCGAN, two VAEs, a diffusion model and a GPT on bundled data, and a diffusion model on spoken digits
    where FSDD is found; write grids, plots, inpainting, text and a spoken number."""
    from ..config import DataConfig
    from ..data import load_dataset
    from ..evaluation import plot_latent_scatter, plot_losses, plot_manifold
    from ..evaluation.plots import plot_trajectory
    from ..pipelines import load

    started = time.monotonic()
    quick = [f"train.max_steps={steps}"] if steps else []
    gan_stage, vae_stage, latent_stage, diffusion_stage, gpt_stage = STAGES
    written: dict[str, Path] = {}

    gan = load(_train(configs, out, gan_stage, quick))
    written["DCGAN, one row per class"] = _class_grid(gan, out / "dcgan-digits-grid.png")
    written["DCGAN losses"] = plot_losses(out / "dcgan-digits", out / "dcgan-digits-losses.png")

    vae = load(_train(configs, out, vae_stage, quick))
    written["VAE, one row per class"] = _class_grid(vae, out / "vae-digits-grid.png")
    written["VAE losses"] = plot_losses(out / "vae-digits", out / "vae-digits-losses.png")
    latent2d = load(_train(configs, out, latent_stage, quick))
    val = load_dataset(DataConfig(name="digits", image_size=8), "val")
    written["VAE latent space"] = plot_latent_scatter(latent2d, val.images, val.labels, out / "vae-latent.png")
    written["VAE decoded manifold"] = plot_manifold(latent2d, out / "vae-manifold.png")

    diffusion = load(_train(configs, out, diffusion_stage, quick))
    written["diffusion, DPM-Solver++ 20 steps"] = _class_grid(diffusion, out / "diffusion-digits-grid.png",
                                                              sampler="dpm-solver++", steps=20)
    labels = torch.arange(diffusion.num_classes).repeat_interleave(2)
    trajectory: list = []  # the DDPM-1000 run's x_t at every step: its first images make the trajectory plot
    ddpm = diffusion.sample(len(labels), labels=labels, seed=0, sampler="ddpm", steps=1000, trajectory=trajectory)
    fast = diffusion.sample(len(labels), labels=labels, seed=0, sampler="dpm-solver++", steps=20)
    written["DDPM-1000 (top) vs DPM-Solver++-20 (bottom)"] = diffusion.save_grid(
        torch.cat([ddpm, fast]), out / "diffusion-ddpm1000-vs-dpmsolver20.png", nrow=len(labels))
    written["denoising trajectory"] = plot_trajectory(trajectory, ddpm, out / "diffusion-trajectory.png",
                                                      rows=[0, 2, 4, 6])
    written["diffusion losses"] = plot_losses(out / "diffusion-digits", out / "diffusion-digits-losses.png")
    written["inpainting"] = _inpainting_example(diffusion, vae, val, out / "inpainting.png")

    gpt = load(_train(configs, out, gpt_stage, quick))
    passage = gpt.generate(PROMPT, max_new_tokens=300, temperature=0.8, top_p=0.95, seed=0)
    written["GPT passage"] = _write_text(out / "gpt-pydoc-passage.txt", PROMPT + passage)
    written["GPT losses"] = plot_losses(out / "gpt-pydoc", out / "gpt-pydoc-losses.png")
    err_console.print(f"\n[bold]GPT, prompted with {PROMPT!r}:[/]\n{PROMPT}{passage}\n", markup=True)

    speech_run = _spoken_digits(configs, out, quick, written)

    for what, path in written.items():
        typer.echo(f"{what + ':':<45} {path}")
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    err_console.print(f"demo finished in {minutes} min {seconds:02d} s")
    served = [out / stage[0] for stage in (gan_stage, vae_stage, diffusion_stage, gpt_stage)]
    runs = " ".join(map(str, served + ([speech_run] if speech_run else [])))
    err_console.print(f"serve these models with a web page at http://127.0.0.1:8000/ :  aigckit serve {runs}")


def _spoken_digits(configs: Path, out: Path, quick: list[str], written: dict[str, Path]) -> Path | None:
    """Train the spoken-digit stage, write its spectrogram grid and a spoken number; None (and one line saying why)
    where FSDD is neither here nor downloadable."""
    from ..audio import write_wav
    from ..errors import DataError
    from ..pipelines import load
    from ..pipelines.speech import audio_spec, speak

    name, what, overrides = AUDIO_STAGE
    beside = configs.resolve().parent.parent / "shared" / "data" / "fsdd"  # the repository's development copy
    if "AIGCKIT_DATA" not in os.environ and (beside / "recordings").is_dir():
        overrides = [*overrides, f"data.root={beside}"]
    try:
        run_dir = _train(configs, out, (name, what, overrides), quick)
    except DataError as error:
        err_console.print(f"skipped the spoken digits: {error}")
        return None
    pipeline = load(run_dir)
    written["spoken digits: log-mels, one row per digit"] = _class_grid(pipeline, out / f"{name}-spectrograms.png",
                                                                        sampler="dpm-solver++", steps=20)
    spec = audio_spec(run_dir)
    speech, _ = speak(pipeline, spec, NUMBER, seed=0)
    wav = out / f"{name}-{NUMBER.replace(' ', '')}.wav"
    written[f"spoken number \"{NUMBER}\""] = write_wav(wav, speech, spec.rate)
    return run_dir


def _write_text(path: Path, text: str) -> Path:
    from ..atomic import atomic_write_text

    atomic_write_text(path, text + "\n")
    return path


def _inpainting_example(diffusion, vae, val, path: Path) -> Path:
    """Rows: truth, damaged, RePaint (diffusion), latent optimisation (VAE), Telea; printed PSNR on the hole."""
    from ..data.transforms import resize
    from ..evaluation.metrics import psnr
    from ..pipelines.inpaint import inpaint_tensors
    from ..pipelines.masks import centre_box

    images, labels = val.images[:PER_CLASS], val.labels[:PER_CLASS]
    hole = centre_box(8, 0.5)[None, None].expand(len(images), 1, 8, 8)
    known = (~hole).float()
    rows = {"truth": images, "damaged": images * known + (1 - known) * 1.0}
    rows["RePaint"] = inpaint_tensors(images, known, method="repaint", pipeline=diffusion, seed=0, labels=labels)
    vae_size = vae.config.image_size  # the VAE works at its own resolution; compare at 8x8
    up = lambda x: resize(x, vae_size)  # noqa: E731
    vae_known = (resize(known, vae_size) > 0.999).float()
    rows["VAE latent"] = resize(inpaint_tensors(up(images), vae_known, method="latent", pipeline=vae, seed=0,
                                                labels=labels), 8)
    rows["VAE latent"] = known * images + (1 - known) * rows["VAE latent"]
    rows["Telea"] = inpaint_tensors(images, known, method="telea")
    for name in ("RePaint", "VAE latent", "Telea"):
        err_console.print(f"inpainting PSNR on the hole, {name}: {psnr(rows[name], images, hole).mean():.2f} dB")
    return diffusion.save_grid(torch.cat(list(rows.values())), path, nrow=len(images))
