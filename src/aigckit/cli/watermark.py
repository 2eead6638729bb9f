"""`aigckit watermark detect --run RUN_DIR FILE`: is this text watermarked with our key?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import AigcError
from .common import user_errors

__all__ = ["watermark_app"]

watermark_app = typer.Typer(help="Text watermark (Kirchenbauer et al. 2023): detect it in a file.",
                            no_args_is_help=True)


def model_vocab_size(run_dir: Path) -> int:
    """The vocabulary the model's logits cover: from a run's newest checkpoint or a transformers config."""
    from ..checkpoint import latest_checkpoint
    from ..models.lm.hf import is_transformers_dir

    if is_transformers_dir(run_dir):
        return int(json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["vocab_size"])
    manifest = json.loads((latest_checkpoint(run_dir) / "config.json").read_text(encoding="utf-8"))
    if manifest.get("family") != "lm":
        raise AigcError(f"{run_dir} holds an image model; the text watermark needs a language model's run")
    return int(manifest["model"]["vocab_size"])


@watermark_app.command("detect")
@user_errors
def detect_command(
    file: Annotated[Path, typer.Argument(help="UTF-8 text to test")],
    run: Annotated[Path, typer.Option(help="run (or transformers model) directory whose tokenizer wrote the text")],
    key: Annotated[int, typer.Option(help="the secret key used at generation")] = 15485863,
    gamma: Annotated[float, typer.Option(help="green-list fraction used at generation")] = 0.25,
    context_width: Annotated[int, typer.Option(help="previous tokens seeding the green list")] = 1,
    threshold: Annotated[float, typer.Option(help="z-score above which the text counts as watermarked")] = 4.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """z-score and p-value of the watermark in FILE (exit 0 either way; see the verdict)."""
    from ..data.tokenizers import load_tokenizer
    from ..models.lm.watermark import Watermark

    if not file.is_file():
        raise AigcError(f"no file at {file}; give the text to test")
    vocab_size = model_vocab_size(run)
    folder = run if (run / "tokenizer.json").is_file() or (run / "tokenizer_config.json").is_file() else None
    if folder is None:
        raise AigcError(f"no tokenizer in {run}; give the run directory the text was generated from")
    ids = load_tokenizer(folder).encode(file.read_text(encoding="utf-8"))
    try:
        score = Watermark(key, gamma, 0.0, context_width).score(ids, vocab_size)
    except ValueError as error:
        raise AigcError(f"{error}") from None
    result = {**score.__dict__, "threshold": threshold, "watermarked": score.z > threshold}
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        verdict = "watermarked" if result["watermarked"] else "no watermark found"
        typer.echo(f"z = {score.z:.2f}, p = {score.p_value:.3g} ({score.green} of {score.scored} tokens green, "
                   f"{score.green_fraction:.1%}; expected {gamma:.0%}): {verdict}")
