"""`aigckit watermark detect --run RUN --key K FILE`: is this text watermarked with our key?
`aigckit watermark key --run RUN --out KEY.json`: write the key material for a model, to generate and detect with."""

from __future__ import annotations

import json
import math
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..errors import AigcError
from .common import user_errors

if TYPE_CHECKING:
    from ..models.lm.watermark import Watermark
    from ..pipelines import TextPipeline

__all__ = ["watermark_app", "watermark_for", "run_vocabulary"]

watermark_app = typer.Typer(help="Text watermark (Kirchenbauer et al. 2023): write a key, detect it in a file.",
                            no_args_is_help=True)
DEFAULTS = {"gamma": 0.25, "delta": 2.0, "context_width": 1}
KEY_HELP = "an integer secret, or a key file written by `aigckit watermark key`"


def run_vocabulary(run: Path) -> tuple[int, Any]:
    """The width of a language model's logits (what green lists are drawn over) and its tokenizer, read from a
    run's newest checkpoint or a transformers directory without loading the weights."""
    from ..checkpoint import latest_checkpoint, verify_checkpoint
    from ..data.tokenizers import load_tokenizer
    from ..models.lm.hf import is_transformers_dir

    if not run.is_dir():
        raise AigcError(f"no run directory at {run}; give the run (or transformers model directory) of the model")
    if is_transformers_dir(run):
        fields = json.loads((run / "config.json").read_text(encoding="utf-8"))
        if not isinstance(fields.get("vocab_size"), int):
            raise AigcError(f"{run}/config.json gives no vocab_size; the watermark needs the model's vocabulary size")
        return fields["vocab_size"], load_tokenizer(run)
    checkpoint = latest_checkpoint(run)
    manifest = verify_checkpoint(checkpoint)
    if manifest.get("family") != "lm":
        raise AigcError(f"{run} holds an image model; the text watermark needs a language model's run")
    if "logits_size" in manifest:
        vocab_size = manifest["logits_size"]
    elif manifest["model"]["name"] in ("gpt", "lstm"):  # older checkpoints: our models' logits are the vocabulary
        vocab_size = manifest["model"]["vocab_size"] + (manifest["model"].get("objective") == "mlm")
    else:
        raise AigcError(f"{checkpoint} does not record the model's vocabulary size (an older checkpoint of a "
                        f"transformers model); load it and save it again with this aigckit")
    for folder in (checkpoint, run):
        if (folder / "tokenizer.json").is_file():
            return vocab_size, load_tokenizer(folder)
    raise AigcError(f"no tokenizer.json in {run}; the run is incomplete")


def parse_key(value: str) -> int | Path:
    """--key / --watermark-key: an integer secret, or the path of a key file."""
    if re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    return Path(value)


def key_material(value: str, vocab_size: int, tokenizer: Any, **options: Any) -> Watermark:
    """Key material from --key: a key file (checked against the model's vocabulary and tokenizer; options must
    not be given, the file fixes them) or an integer secret with the options (defaults where None)."""
    from ..data.tokenizers import tokenizer_sha256
    from ..models.lm.watermark import Watermark

    key = parse_key(value)
    sha = tokenizer_sha256(tokenizer)
    if isinstance(key, int):
        chosen = {name: DEFAULTS[name] if options.get(name) is None else options[name] for name in options}
        return Watermark(key=key, vocab_size=vocab_size, tokenizer_sha256=sha, **chosen)
    given = [name for name, v in options.items() if v is not None]
    if given:
        raise AigcError(f"the key file {key} fixes {', '.join(given)}; drop the option(s) or use an integer key")
    mark = Watermark.load(key)
    if mark.vocab_size != vocab_size:
        raise AigcError(f"the key file {key} was made for a vocabulary of {mark.vocab_size} tokens but this model "
                        f"has {vocab_size}; use the key made for this model (aigckit watermark key --run RUN)")
    if mark.tokenizer_sha256 is not None and mark.tokenizer_sha256 != sha:
        raise AigcError(f"the key file {key} was made for another tokenizer than this model's (sha256 "
                        f"{mark.tokenizer_sha256[:12]}…, this one {sha[:12]}…); use the key made for this model")
    return mark


def watermark_for(value: str, pipeline: TextPipeline, *, gamma: float | None, delta: float | None,
                  context_width: int | None) -> Watermark:
    """`aigckit generate --watermark-key`: key material for the loaded model."""
    return key_material(value, pipeline.model.logits_size, pipeline.tokenizer, gamma=gamma, delta=delta,
                        context_width=context_width)


def read_text(file: Path) -> str:
    """The UTF-8 text of FILE, or one line saying why it cannot be tested."""
    if not file.exists():
        raise AigcError(f"no file at {file}; give the text to test")
    if not file.is_file():
        raise AigcError(f"{file} is not a file; give the text file to test")
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise AigcError(f"{file} is not UTF-8 text (byte {error.start} cannot be decoded); convert it to UTF-8, "
                        f"e.g. iconv -f latin1 -t utf-8") from None
    if not text.strip():
        raise AigcError(f"{file} is empty; give the text to test")
    return text


@watermark_app.command("detect")
@user_errors
def detect_command(
    file: Annotated[Path, typer.Argument(help="UTF-8 text to test")],
    run: Annotated[Path, typer.Option(help="run (or transformers model) directory whose tokenizer wrote the text")],
    key: Annotated[str, typer.Option(help=KEY_HELP)],
    gamma: Annotated[Optional[float], typer.Option(help="integer key: green-list fraction used at generation "
                                                        "(default: 0.25)")] = None,
    context_width: Annotated[Optional[int], typer.Option(help="integer key: previous tokens seeding the green list "
                                                              "(default: 1)")] = None,
    threshold: Annotated[float, typer.Option(help="z-score above which the text counts as watermarked")] = 4.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """z-score and p-value of the watermark in FILE (exit 0 either way; see the verdict)."""
    if not math.isfinite(threshold):
        raise AigcError(f"--threshold must be a finite z-score, got {threshold}")
    text = read_text(file)
    vocab_size, tokenizer = run_vocabulary(run)
    mark = key_material(key, vocab_size, tokenizer, gamma=gamma, context_width=context_width)
    score = mark.score(tokenizer.encode(text))
    result = {**score.__dict__, "threshold": threshold, "watermarked": score.z > threshold,
              "vocab_size": mark.vocab_size, "green_list_size": mark.green_list_size, "gamma": mark.gamma,
              "effective_gamma": mark.effective_gamma, "context_width": mark.context_width}
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        verdict = "watermarked" if result["watermarked"] else "no watermark found"
        typer.echo(f"z = {score.z:.2f}, p = {score.p_value:.3g} ({score.green} of {score.scored} tokens green, "
                   f"{score.green_fraction:.1%}; expected {mark.effective_gamma:.1%}, {mark.green_list_size} of "
                   f"{mark.vocab_size} ids per list): {verdict}")


@watermark_app.command("key")
@user_errors
def key_command(
    run: Annotated[Path, typer.Option(help="run (or transformers model) directory of the model that will generate")],
    out: Annotated[Path, typer.Option(help="key file to write (JSON; keep it secret)")],
    key: Annotated[Optional[int], typer.Option(help="the secret (default: 63 random bits)")] = None,
    gamma: Annotated[float, typer.Option(help="green-list fraction")] = DEFAULTS["gamma"],
    delta: Annotated[float, typer.Option(help="logit bias of green tokens")] = DEFAULTS["delta"],
    context_width: Annotated[int, typer.Option(help="previous tokens seeding the green list")] =
    DEFAULTS["context_width"],
) -> None:
    """Write the key material for RUN's model as a JSON key file.

    It holds the secret, gamma, delta and context width, the vocabulary size the green lists are drawn over (the
    model's logits), the green-list size and effective gamma, and the sha256 of the tokenizer.
    """
    from ..data.tokenizers import tokenizer_sha256
    from ..models.lm.watermark import Watermark

    if out.exists():
        raise AigcError(f"{out} already exists; a key file is never overwritten: choose another --out")
    vocab_size, tokenizer = run_vocabulary(run)
    mark = Watermark(key=secrets.randbits(63) if key is None else key, vocab_size=vocab_size, gamma=gamma,
                     delta=delta, context_width=context_width, tokenizer_sha256=tokenizer_sha256(tokenizer))
    mark.save(out)
    typer.echo(f"wrote {out}: green lists of {mark.green_list_size} of {mark.vocab_size} ids (effective gamma "
               f"{mark.effective_gamma:.4f}), delta {mark.delta}, context {mark.context_width}")
