"""`aigckit demo`: the main job — train the three image families on the bundled digits and show the results."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Optional

import torch
import typer

from .common import err_console, user_errors

__all__ = ["demo_command"]

PER_CLASS = 10


def _train(configs: Path, name: str, out: Path, overrides: list[str], what: str) -> Path:
    from ..config import load_config
    from ..training import train

    config = load_config(configs / f"{name}.yaml", overrides)
    run_dir = out / name
    shutil.rmtree(run_dir, ignore_errors=True)
    err_console.print(f"[bold]training[/] {what} -> {run_dir}")
    return train(config, run_dir)


def _class_grid(pipeline, path: Path, **options) -> Path:
    labels = [c for c in range(pipeline.num_classes) for _ in range(PER_CLASS)]
    return pipeline.save_grid(pipeline.sample(len(labels), labels=labels, seed=0, **options), path, nrow=PER_CLASS)


@user_errors
def demo_command(
    out: Annotated[Path, typer.Option(help="folder for the demo's runs and pictures")] = Path("runs/demo"),
    configs: Annotated[Path, typer.Option(help="folder holding the presets")] = Path("configs"),
    steps: Annotated[Optional[int], typer.Option(help="override every run's train.max_steps (a quick look)")] = None,
) -> None:
    """Train a DCGAN, a VAE and a diffusion model on the bundled digits; write grids, plots and an inpainting."""
    from ..config import DataConfig
    from ..data import load_dataset
    from ..evaluation import plot_latent_scatter, plot_losses, plot_manifold, plot_trajectory
    from ..pipelines import load

    quick = [f"train.max_steps={steps}"] if steps else []
    written: dict[str, Path] = {}

    gan = load(_train(configs, "dcgan-digits", out, quick, "a class-conditional DCGAN"))
    written["DCGAN, one row per class"] = _class_grid(gan, out / "dcgan-digits-grid.png")
    written["DCGAN losses"] = plot_losses(out / "dcgan-digits", out / "dcgan-digits-losses.png")

    vae = load(_train(configs, "vae-digits", out, quick, "a class-conditional convolutional VAE"))
    written["VAE, one row per class"] = _class_grid(vae, out / "vae-digits-grid.png")
    written["VAE losses"] = plot_losses(out / "vae-digits", out / "vae-digits-losses.png")
    latent2d = load(_train(configs, "mlp-vae-mnist", out, ["data.name=digits", "data.image_size=8",
                                                          "train.max_steps=2000", *quick],
                           "the worked-example MLP VAE (2-D latent) on the digits"))
    val = load_dataset(DataConfig(name="digits", image_size=8), "val")
    written["VAE latent space"] = plot_latent_scatter(latent2d, val.images, val.labels, out / "vae-latent.png")
    written["VAE decoded manifold"] = plot_manifold(latent2d, out / "vae-manifold.png")

    diffusion = load(_train(configs, "diffusion-digits", out, quick, "a class-conditional diffusion model"))
    written["diffusion, DPM-Solver++ 20 steps"] = _class_grid(diffusion, out / "diffusion-digits-grid.png",
                                                              sampler="dpm-solver++", steps=20)
    labels = torch.arange(diffusion.num_classes).repeat_interleave(2)
    side_by_side = torch.cat([diffusion.sample(len(labels), labels=labels, seed=0, sampler=s, steps=n)
                              for s, n in (("ddpm", 1000), ("dpm-solver++", 20))])
    written["DDPM-1000 (top) vs DPM-Solver++-20 (bottom)"] = diffusion.save_grid(
        side_by_side, out / "diffusion-ddpm1000-vs-dpmsolver20.png", nrow=len(labels))
    written["denoising trajectory"] = plot_trajectory(diffusion, out / "diffusion-trajectory.png",
                                                      labels=torch.arange(4), steps=1000)
    written["diffusion losses"] = plot_losses(out / "diffusion-digits", out / "diffusion-digits-losses.png")

    written["inpainting"] = _inpainting_example(diffusion, vae, val, out / "inpainting.png")
    for what, path in written.items():
        typer.echo(f"{what + ':':<45} {path}")


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
