"""Plots of a run: loss curves from metrics.csv."""

from __future__ import annotations

from pathlib import Path

from ..errors import AigcError
from ..training.callbacks import read_metrics

__all__ = ["plot_losses"]


def plot_losses(run_dir: str | Path, out: str | Path) -> Path:
    """Plot every `*loss*` column of run_dir/metrics.csv against the step into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
