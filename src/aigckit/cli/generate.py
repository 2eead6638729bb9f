"""`aigckit generate RUN_OR_MODEL_DIR --prompt "..."`: text completion; only the generated text goes to stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import AigcError
from .common import user_errors

__all__ = ["generate_command"]


@user_errors
def generate_command(
    run_dir: Annotated[Path, typer.Argument(help="run directory of a language model, or a local transformers "
                                                 "model directory")],
    prompt: Annotated[str, typer.Option(help="text to continue")] = "",
    max_new_tokens: Annotated[int, typer.Option(help="tokens to generate")] = 200,
    greedy: Annotated[bool, typer.Option("--greedy", help="always take the most likely token")] = False,
    temperature: Annotated[float, typer.Option(help="sampling temperature")] = 1.0,
    top_k: Annotated[Optional[int], typer.Option(help="sample among the k most likely tokens")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="sample from the smallest set with this probability")] = None,
    repetition_penalty: Annotated[float, typer.Option(help="> 1 discourages repeated tokens")] = 1.0,
    stop: Annotated[Optional[list[str]], typer.Option(help="stop at this string (repeatable)")] = None,
    num_beams: Annotated[int, typer.Option(help="beam search with this many beams (1: sample)")] = 1,
    seed: Annotated[Optional[int], typer.Option(help="random seed")] = None,
    stream: Annotated[bool, typer.Option("--stream", help="print tokens as they are generated")] = False,
    watermark_key: Annotated[Optional[int], typer.Option(help="watermark the text with this secret key")] = None,
    watermark_gamma: Annotated[float, typer.Option(help="watermark: green-list fraction")] = 0.25,
    watermark_delta: Annotated[float, typer.Option(help="watermark: logit bias of green tokens")] = 2.0,
    watermark_context: Annotated[int, typer.Option(help="watermark: previous tokens seeding the green list")] = 1,
) -> None:
    """Continue a prompt with a trained language model."""
    from ..models.lm.watermark import Watermark
    from ..pipelines import TextPipeline, load

    pipeline = load(run_dir)
    if not isinstance(pipeline, TextPipeline):
        raise AigcError(f"{run_dir} holds an image model; use aigckit sample")
    if max_new_tokens < 1 or temperature <= 0 or (top_p is not None and not 0 < top_p <= 1):
        raise AigcError("--max-new-tokens must be >= 1, --temperature > 0 and --top-p in (0, 1]")
    watermark = None
    if watermark_key is not None:
        try:
            watermark = Watermark(watermark_key, watermark_gamma, watermark_delta, watermark_context)
        except ValueError as error:
            raise AigcError(f"{error}: fix the --watermark-* options") from None
    pieces = pipeline.stream(prompt, max_new_tokens=max_new_tokens, greedy=greedy, temperature=temperature,
                             top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty, stop=stop, seed=seed,
                             num_beams=num_beams, watermark=watermark)
    if stream:
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    else:
        typer.echo("".join(pieces))
