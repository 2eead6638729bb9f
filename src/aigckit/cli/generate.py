"""`aigckit generate RUN_OR_MODEL_DIR --prompt "..."`: text completion; only the generated text goes to stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import AigcError
from .common import PrecisionOption, check_precision, say_precision, user_errors

__all__ = ["generate_command"]

MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed's range


@user_errors
def generate_command(
    run_dir: Annotated[Path, typer.Argument(help="run directory of a language model, or a local transformers "
                                                 "model directory")],
    prompt: Annotated[str, typer.Option(help="text to continue")] = "",
    max_new_tokens: Annotated[int, typer.Option(help="tokens to generate")] = 200,
    greedy: Annotated[bool, typer.Option("--greedy", help="always take the most likely token")] = False,
    temperature: Annotated[Optional[float], typer.Option(help="sampling temperature (> 0) (default: 1)")] = None,
    top_k: Annotated[Optional[int], typer.Option(help="sample among the k most likely tokens")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="sample from the smallest set with this probability")] = None,
    repetition_penalty: Annotated[Optional[float], typer.Option(help="> 1 discourages repeated tokens (default: 1)")]
    = None,
    stop: Annotated[Optional[list[str]], typer.Option(help="stop at this string (repeatable)")] = None,
    num_beams: Annotated[int, typer.Option(help="beam search with this many beams (1: sample)")] = 1,
    seed: Annotated[Optional[int], typer.Option(help="random seed")] = None,
    stream: Annotated[bool, typer.Option("--stream", help="print tokens as they are generated")] = False,
    watermark_key: Annotated[Optional[str], typer.Option(
        help="watermark the text: an integer secret, or a key file written by `aigckit watermark key`")] = None,
    watermark_gamma: Annotated[Optional[float], typer.Option(help="watermark: green-list fraction (default: 0.25)")]
    = None,
    watermark_delta: Annotated[Optional[float], typer.Option(help="watermark: logit bias of green tokens "
                                                                  "(default: 2)")] = None,
    watermark_context: Annotated[Optional[int], typer.Option(help="watermark: previous tokens seeding the green "
                                                                  "list (default: 1)")] = None,
    base_model: Annotated[Optional[Path], typer.Option(help="a LoRA run's base model, when it moved from where "
                                                            "the run was trained")] = None,
    precision: PrecisionOption = "auto",
) -> None:
    """Continue a prompt with a trained language model."""
    from ..models.lm.generation import check_generation_options
    from ..pipelines import TextPipeline
    from .watermark import watermark_for

    sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "repetition_penalty": repetition_penalty}
    given = {k: v for k, v in sampling.items() if v is not None}
    check_generation_options(max_new_tokens=max_new_tokens, num_beams=num_beams, **given)
    if greedy and set(given) & {"temperature", "top_k", "top_p"}:
        raise AigcError("--greedy takes the most likely token; drop --temperature, --top-k and --top-p "
                        "(they shape sampling)")
    if num_beams > 1 and (given or greedy or watermark_key is not None):
        raise AigcError("beam search (--num-beams > 1) does not sample: drop --greedy, --temperature, --top-k, "
                        "--top-p, --repetition-penalty and --watermark-key, or use --num-beams 1")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise AigcError(f"--seed must be in 0..{MAX_SEED}, got {seed}")
    watermark_options = {"gamma": watermark_gamma, "delta": watermark_delta, "context_width": watermark_context}
    if watermark_key is None and any(v is not None for v in watermark_options.values()):
        raise AigcError("--watermark-gamma, --watermark-delta and --watermark-context need --watermark-key")

    check_precision(precision)
    pipeline = TextPipeline.load(run_dir, base_model=base_model, precision=precision)
    say_precision(pipeline)
    watermark = None
    if watermark_key is not None:
        watermark = watermark_for(watermark_key, pipeline, **watermark_options)
    pieces = pipeline.stream(prompt, max_new_tokens=max_new_tokens, greedy=greedy, stop=stop, seed=seed,
                             num_beams=num_beams, watermark=watermark, **given)
    if stream:
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    else:
        typer.echo("".join(pieces))
