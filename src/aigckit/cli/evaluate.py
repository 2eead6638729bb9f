"""`aigckit eval RUN_DIR`: sample-quality, diversity and likelihood numbers for a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import AigcError
from .common import err_console, user_errors

__all__ = ["eval_command"]

TABLE_KEYS = ["fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage", "classifier_score"]
TEXT_KEYS = ["val_loss", "perplexity", "bits_per_char", "distinct_1", "distinct_2", "distinct_3", "self_bleu",
             "repetition_rate"]


@user_errors
def eval_command(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    n: Annotated[int, typer.Option("--n", help="number of generated samples")] = 10000,
    extractor: Annotated[str, typer.Option(help="evaluator (per-dataset CNN) or inception")] = "evaluator",
    inception_weights: Annotated[Optional[Path], typer.Option(help="pt_inception-2015-12-05 weights file")] = None,
    sampler: Annotated[Optional[str], typer.Option(help="diffusion: ddpm, ddim or dpm-solver++")] = None,
    steps: Annotated[Optional[int], typer.Option(help="diffusion: denoising steps")] = None,
    guidance: Annotated[Optional[float], typer.Option(help="diffusion: classifier-free guidance")] = None,
    sweep: Annotated[Optional[str], typer.Option(help="diffusion: FID per sampler at these step counts, e.g. 10,20,50")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON object on stdout")] = False,
) -> None:
    """Evaluate a run; writes RUN_DIR/eval/metrics.json and prints a table (or the JSON with --json)."""
    from ..evaluation.evaluate import evaluate_run

    if extractor not in ("evaluator", "inception"):
        raise AigcError(f"--extractor must be evaluator or inception, got {extractor!r}")
    if n < 2:
        raise AigcError("--n must be at least 2")
    try:
        sweep_steps = tuple(int(s) for s in sweep.split(",")) if sweep else ()
    except ValueError:
        raise AigcError(f"--sweep takes step counts such as 10,20,50, got {sweep!r}") from None
    result = evaluate_run(run_dir, n=n, extractor=extractor, inception_weights=inception_weights, sampler=sampler,
                          steps=steps, guidance=guidance, seed=seed, sweep=sweep_steps)
    keys = TEXT_KEYS if result["family"] == "lm" else TABLE_KEYS
    if result.get("fallback"):
        err_console.print(f"[yellow]note:[/] {result['fallback']}")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{run_dir} — {result['model']} on {result['dataset']}, {result['n_samples']} samples, "
                        f"{result.get('extractor', 'validation text')}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in keys:
        table.add_row(key, f"{result[key]:.4g}")
    if result["family"] == "lm":
        Console().print(table)
        return
    if result["conditional_accuracy"]:
        table.add_row("conditional accuracy", f"{result['conditional_accuracy']['overall']:.3f}")
    table.add_row("near-copies of training images", f"{result['memorisation']['near_copy_fraction']:.3f}")
    if result["likelihood"]:
        table.add_row("bits/dim (" + result["likelihood"]["bound"].split(",")[0] + ")",
                      f"{result['likelihood']['bits_per_dim']:.4f}")
    Console().print(table)
    err_console.print(f"wrote {Path(run_dir) / 'eval' / 'metrics.json'}")
