"""Plots of a run: loss curves from metrics.csv."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..atomic import atomic_path
from ..errors import AigcError
from ..imaging import save_grid
from ..metrics_log import read_metrics

__all__ = ["plot_losses", "plot_latent_scatter", "plot_manifold", "plot_trajectory", "plot_prompt_grid"]


def plot_losses(run_dir: str | Path, out: str | Path) -> Path:
    """Plot every `*loss*` column of run_dir/metrics.csv against the step into a PNG."""
    plt = _pyplot()
    rows = read_metrics(Path(run_dir) / "metrics.csv")
    keys = sorted({k for row in rows for k in row if "loss" in k})
    if not keys:
        raise AigcError(f"{run_dir}/metrics.csv has no losses yet; train the run first")
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for key in keys:
        points = [(row["step"], row[key]) for row in rows if key in row]
        ax.plot([p[0] for p in points], [p[1] for p in points], label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(Path(run_dir).name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, plt, out)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latent_scatter(pipeline, images: Tensor, labels: Tensor, out: str | Path) -> Path:
    """Scatter the posterior means of a 2-D-latent VAE, coloured by label."""
    if not pipeline.family.supports("encode") or pipeline.config.latent_dim != 2:
        raise AigcError("the latent scatter needs a VAE with latent_dim=2; train one with model.latent_dim=2")
    with torch.no_grad():
        mu, _ = pipeline.model.encode(images, labels if pipeline.config.conditional else None)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    points = ax.scatter(mu[:, 0], mu[:, 1], c=labels, cmap="tab10", s=8)
    fig.colorbar(points, ax=ax, label="class")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title("posterior means of the validation images")
    fig.tight_layout()
    return _save(fig, plt, out)


def plot_manifold(pipeline, out: str | Path, n: int = 15, label: int | None = None) -> Path:
    """Decode an n x n grid of a 2-D latent at the N(0, 1) quantiles 0.05..0.95 (Kingma & Welling, fig. 4)."""
    if not pipeline.family.supports("encode") or pipeline.config.latent_dim != 2:
        raise AigcError("the manifold plot needs a VAE with latent_dim=2; train one with model.latent_dim=2")
    quantiles = torch.distributions.Normal(0, 1).icdf(torch.linspace(0.05, 0.95, n))
    z = torch.stack(torch.meshgrid(quantiles, quantiles.flip(0), indexing="xy"), dim=-1).reshape(-1, 2)
    labels = torch.full((len(z),), label or 0) if pipeline.config.conditional else None
    with torch.no_grad():
        images = pipeline.model.to_image(pipeline.model.decode(z, labels))
    return save_grid(images, out, nrow=n, upscale=max(1, 48 // images.shape[-1]))


def plot_trajectory(trajectory: list[tuple[int, Tensor]], final: Tensor, out: str | Path, *,
                    rows: list[int] | None = None, columns: int = 8) -> Path:
    """A strip of x_t at `columns` noise levels from pure noise to the sample, one row per image.

    trajectory: the (t, x_t) pairs a diffusion sampler recorded (`sample(..., trajectory=list)`); final: its
    samples (B, C, H, W); rows: which of the B images to show (all by default).
    """
    rows = list(range(final.shape[0])) if rows is None else rows
    picks = torch.linspace(0, len(trajectory) - 1, columns - 1).round().long().tolist()
    frames = [trajectory[i][1][rows].clamp(-1, 1) for i in picks] + [final[rows]]
    grid = torch.stack(frames, dim=1).reshape(-1, *final.shape[1:])  # row-major: image by image
    return save_grid(grid.cpu(), out, nrow=columns, upscale=max(1, 48 // final.shape[-1]))


def _save(fig, plt, out: str | Path) -> Path:
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)
    return out


def plot_prompt_grid(rows: list[tuple[str, Tensor]], out: str | Path, *, title: str = "") -> Path:
    """A figure with one row per prompt: its text, then its images ((k, C, H, W) in [-1, 1]), e.g. what a
    text-to-image model drew for each caption."""
    plt = _pyplot()
    columns = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.1 * columns + 3.2, 1.15 * len(rows)), dpi=110,
                             squeeze=False)
    for (prompt, images), line in zip(rows, axes):
        for k, ax in enumerate(line):
            ax.set_xticks([])
            ax.set_yticks([])
            if k < len(images):
                picture = ((images[k].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
                ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray", vmin=0, vmax=1,
                          interpolation="nearest")
            else:
                ax.axis("off")
        line[0].set_ylabel(prompt, rotation=0, ha="right", va="center", fontsize=8, wrap=True)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, plt, out)
