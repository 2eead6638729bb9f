"""`compare_runs`: one offline HTML page comparing runs — sample grids (animated for video runs), loss curves,
metrics, steps sweeps, and the scores of audio, text-to-image and video runs."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import AigcError
from .plots import _pyplot, _save, plot_losses

__all__ = ["compare_runs", "likelihood_basis"]

COLUMNS = ["fid", "kid_mean", "precision", "recall", "density", "coverage", "classifier_score"]


def likelihood_basis(metrics: dict) -> tuple | None:
    """What a run's bits/dim is measured over: (data fingerprint, split, images, dims, discretisation); None
    when it has no bits/dim. Two runs' bits/dim share a column only when their bases are equal."""
    likelihood = metrics.get("likelihood") or {}
    if likelihood.get("bits_per_dim") is None:
        return None
    if "data_fingerprint" not in likelihood:  # written before bases were recorded: comparable with nothing
        return ("unrecorded", metrics["run"])
    return (likelihood["data_fingerprint"], likelihood["split"], likelihood["n_images"], likelihood["dims"],
            likelihood["discretisation"])


def _likelihood_columns(rows: list[tuple[str, dict | None]]) -> tuple[list[tuple], list[str], list[str]]:
    """The distinct bases (one bits/dim column each), their headers, and notes saying what each column is
    measured over and which likelihoods are in no column."""
    first: dict[tuple, dict] = {}  # basis -> the first run measured on it
    for _, m in rows:
        basis = likelihood_basis(m) if m else None
        if basis is not None:
            first.setdefault(basis, m)
    bases = list(first)
    headers = ["bits/dim" if len(bases) == 1 else f"bits/dim [{i + 1}]" for i in range(len(bases))]
    notes = []
    for header, basis in zip(headers, bases):
        m, likelihood = first[basis], first[basis]["likelihood"]
        if basis[0] == "unrecorded":
            notes.append(f"{header}: {m['run']}, evaluated before the data it was measured on was recorded; "
                         f"comparable with no other run.")
            continue
        notes.append(f"{header}: {m['dataset']} {likelihood['split']} split, {likelihood['n_images']} images, "
                     f"{likelihood['dims']} dimensions, {likelihood['discretisation']} pixels (data {basis[0]}).")
    for name, m in rows:
        if m and m.get("likelihood") and likelihood_basis(m) is None:
            likelihood = m["likelihood"]
            notes.append(f"{name}: {likelihood['bound']}, {likelihood['nats']:.2f} nats per image under "
                         f"{likelihood['pixel_model']}; in no bits/dim column.")
    return bases, headers, notes


def _embed(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    kind = "gif" if path.suffix.lower() == ".gif" else "png"
    return f'<img src="data:image/{kind};base64,{data}" alt="{html.escape(path.name)}">'


def _audio_players(eval_dir: Path, vocoder: str) -> str:
    """The generated clips of an audio run's evaluation (eval/audio/{digit}-{k}.wav) as embedded players, a row
    per digit."""
    rows: dict[str, list[str]] = {}
    for wav in sorted((eval_dir / "audio").glob("*.wav"), key=lambda p: [int(x) for x in p.stem.split("-")]):
        data = base64.b64encode(wav.read_bytes()).decode()
        rows.setdefault(wav.stem.split("-")[0], []).append(
            f'<audio controls preload="none" title="{html.escape(wav.name)}" src="data:audio/wav;base64,{data}">'
            f'</audio>')
    if not rows:
        return "<p>no audio files in the evaluation folder</p>"
    lines = "".join(f"<div class='clips'><span>{html.escape(label)}</span>{''.join(players)}</div>"
                    for label, players in rows.items())
    return f"<div class='audio'><p>generated clips, as heard ({html.escape(vocoder)})</p>{lines}</div>"


def _score_table(headers: list[str], rows: list[tuple[str, list[float | None]]]) -> str:
    """A small table: a named row of figures per line (None shown as a dash)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + f"<td>{html.escape(name)}</td>" + "".join(
        f"<td>{'—' if v is None else f'{v:.3f}'}</td>" for v in values) + "</tr>" for name, values in rows)
    return f"<table class='scores'><tr>{head}</tr>{body}</table>"


def _video_section(run_dir: Path, video: dict) -> str:
    """A video run's evaluation: its generated clips (animated) and its scores beside the real held-out clips' and
    the repeated-frame baseline's (and a prediction model's clips continued from real first frames)."""
    from .video import VIDEO_ROWS

    parts = []
    gif = run_dir / "eval" / "samples.gif"
    if gif.is_file():
        parts.append(f"<figure>{_embed(gif)}<figcaption>generated clips (eval)</figcaption></figure>")
    keys = ("fvd_style", "frame_fid", "identity_kept_share", "consistent_share", "mostly_consistent_share",
            "frame_agreement", "majority_is_labels")
    rows = [(name, [video[key].get(k) for k in keys]) for key, name in VIDEO_ROWS.items() if key in video]
    parts.append(_score_table(["clips", "FVD-style", "per-frame FID", "identity kept (digits apart)", "consistent",
                               "mostly consistent", "frame agreement", "majority = labels"], rows))
    parts.append(f"<p class='note'>scored by {html.escape(video['extractor']['extractor'])} (ours, not I3D: "
                 "FVD-style figures are not comparable with published FVD)</p>")
    return "\n".join(parts)


def _text_to_image_section(metrics: dict) -> str:
    """A text-to-image run's evaluation: its images for each caption and the attribute accuracies per caption set."""
    scores = metrics["text_to_image"]
    parts = []
    grid = Path(scores.get("prompts_png") or "")
    if grid.is_file():
        parts.append(f"<figure>{_embed(grid)}<figcaption>generated images for test captions</figcaption></figure>")
    keys = ("class_accuracy", "position_accuracy", "caption_accuracy")
    rows = [(f"{who} {captions}", [scores[who][captions].get(k) for k in keys])
            for who in ("generated", "real_test") for captions in scores.get(who, {})]
    parts.append(_score_table(["images, captions", "class", "position", "whole caption"], rows))
    return "\n".join(parts)


def _sweep_plot(rows: list[dict], out: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for sampler in sorted({r["sampler"] for r in rows}):
        points = sorted((r["steps"], r["fid"]) for r in rows if r["sampler"] == sampler)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=sampler)
    ax.set_xscale("log")
    ax.set_xlabel("sampling steps")
    ax.set_ylabel("FID")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, plt, out)


def compare_runs(run_dirs: list[Path], out: Path) -> Path:
    """Write out/index.html (images embedded, viewable offline) comparing the given runs."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, sections = [], []
    for run_dir in map(Path, run_dirs):
        if not (run_dir / "config.yaml").is_file():
            raise AigcError(f"{run_dir} is not a run directory (no config.yaml)")
        name = html.escape(run_dir.name)
        metrics_path = run_dir / "eval" / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
        parts = [f"<h2>{name}</h2>"]
        grids = sorted((run_dir / "samples").glob("step-*.png"))
        if grids:
            animated = grids[-1].with_suffix(".gif")  # a video run's samples also as an animation: show that
            shown = animated if animated.is_file() else grids[-1]
            parts.append(f"<figure>{_embed(shown)}<figcaption>samples at {grids[-1].stem}</figcaption></figure>")
        try:
            parts.append(f"<figure>{_embed(plot_losses(run_dir, out / f'{run_dir.name}-losses.png'))}"
                         "<figcaption>losses</figcaption></figure>")
        except AigcError:
            parts.append("<p>no losses logged</p>")
        if metrics and metrics.get("audio"):
            grid = run_dir / "eval" / "spectrograms.png"
            if grid.is_file():
                parts.append(f"<figure>{_embed(grid)}<figcaption>generated log-mel spectrograms, a row per digit"
                             "</figcaption></figure>")
            parts.append(_audio_players(run_dir / "eval", metrics["audio"]["vocoder"]))
        if metrics and metrics.get("video"):
            parts.append(_video_section(run_dir, metrics["video"]))
        if metrics and metrics.get("text_to_image"):
            parts.append(_text_to_image_section(metrics))
        if metrics and metrics.get("sweep"):
            plot = _sweep_plot(metrics["sweep"], out / f"{run_dir.name}-sweep.png")
            parts.append(f"<figure>{_embed(plot)}<figcaption>FID against sampling steps</figcaption></figure>")
        if metrics is None:
            parts.append(f"<p>not evaluated yet: <code>aigckit eval {html.escape(str(run_dir))}</code></p>")
        sections.append("\n".join(parts))
        rows.append((name, metrics))

    bases, likelihood_headers, notes = _likelihood_columns(rows)
    header = "".join(f"<th>{c}</th>" for c in ["run", "model", "samples", "extractor", *COLUMNS,
                                               *likelihood_headers])
    body = []
    for name, m in rows:
        if m is None:
            body.append(f"<tr><td>{name}</td><td colspan='{len(COLUMNS) + 3 + len(bases)}'>not evaluated</td></tr>")
            continue
        extractor = m["extractor"] if "extractor" in m else m["video"]["extractor"]["extractor"]
        cells = [name, m["model"], m["n_samples"], extractor]
        cells += [f"{m[c]:.4g}" if m.get(c) is not None else "—" for c in COLUMNS]
        basis = likelihood_basis(m)
        cells += [f"{m['likelihood']['bits_per_dim']:.3f}" if basis == b else "—" for b in bases]
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    legend = "".join(f"<p class='note'>{html.escape(note)}</p>" for note in notes)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>aigckit comparison</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} img{{max-width:560px;image-rendering:pixelated}}
figure{{display:inline-block;margin:0 1em 1em 0;vertical-align:top}}
.clips{{display:flex;align-items:center;gap:.5em}} .clips span{{width:2em;font-weight:bold}}</style></head><body>
<h1>aigckit comparison</h1>
<table><tr>{header}</tr>{''.join(body)}</table>
{legend}
{''.join(f'<section>{s}</section>' for s in sections)}
</body></html>
"""
    atomic_write_text(out / "index.html", page)
    return out / "index.html"
