"""`aigckit eval RUN_DIR`: sample-quality, diversity and likelihood numbers for a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import AigcError
from .common import PrecisionOption, check_precision, check_seed, err_console, say_precision, user_errors

__all__ = ["eval_command"]

TABLE_KEYS = ["fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage", "classifier_score"]
STYLE_KEYS = ["style_distance", "patch_fd", "content_ssim", "edge_correlation"]
TEXT_KEYS = ["val_loss", "perplexity", "bits_per_char", "distinct_1", "distinct_2", "distinct_3", "self_bleu",
             "repetition_rate"]
EXTRACTORS = ("evaluator", "inception")
MIN_IMAGES = 4  # precision/recall measures each generated image's 3rd nearest other one
MIN_TEXTS = 2  # self-BLEU compares each text with the others


def _parse_sweep(sweep: str | None) -> tuple[int, ...]:
    if not sweep:
        return ()
    try:
        steps = tuple(int(s) for s in sweep.split(","))
    except ValueError:
        raise AigcError(f"--sweep takes step counts such as 10,20,50, got {sweep!r}") from None
    if min(steps) < 1:
        raise AigcError(f"--sweep step counts must be at least 1, got {sweep!r}")
    return steps


def _check_inputs(run_dir: Path, n: int, extractor: str, options: dict[str, Any], sweep: tuple[int, ...],
                  seed: int, precision: str) -> None:
    """Refuse what the run cannot serve before the long work: one sample with the asked options (and the sweep's
    largest step count) fails in seconds where the evaluation would fail after minutes."""
    from ..evaluation.evaluate import run_config
    from ..pipelines import ImagePipeline, load

    run_config(run_dir)  # a folder that is not a run is refused here, with what to pass instead
    pipeline = load(run_dir, precision=precision)
    say_precision(pipeline)
    if not isinstance(pipeline, ImagePipeline):
        image_only = {**{f"--{name}": True for name in options}, "--sweep": bool(sweep),
                      "--extractor inception": extractor == "inception"}
        given = [name for name, used in image_only.items() if used]
        if given:
            one = len(given) == 1
            raise AigcError(f"{run_dir} holds a language model; {', '.join(given)} {'applies' if one else 'apply'} "
                            f"to image models only, so drop {'it' if one else 'them'}")
        if n < MIN_TEXTS:
            raise AigcError(f"--n must be at least {MIN_TEXTS} for a language model (self-BLEU compares texts), "
                            f"got {n}")
        return
    if pipeline.family.name == "style":
        given = [name for name, used in {**{f"--{name}": True for name in options}, "--sweep": bool(sweep),
                                          "--extractor inception": extractor == "inception"}.items() if used]
        if given:
            raise AigcError(f"{run_dir} holds a stylizer, scored on held-out content with style features of its "
                            f"own; drop {', '.join(given)}")
    if n < MIN_IMAGES:
        raise AigcError(f"--n must be at least {MIN_IMAGES} (precision/recall needs each image's 3rd nearest "
                        f"neighbour among the samples), got {n}")
    pipeline.sample(1, seed=seed, **options)
    if sweep:
        if not {"sampler", "steps"} <= pipeline.family.sample_options:
            raise AigcError(f"--sweep compares samplers at several step counts, which {pipeline.config.name} models "
                            f"do not have; drop --sweep")
        pipeline.sample(1, seed=seed, **{**options, "steps": max(sweep)})


def _cell(value: Any) -> str:
    return "—" if value is None else f"{value:.4g}"


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
    image_size: Annotated[Optional[int], typer.Option(
        help="measure at this size (samples resized as the data loader resizes); default the model's")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON object on stdout")] = False,
    precision: PrecisionOption = "auto",
    vocoder: Annotated[str, typer.Option(help="audio runs: griffin-lim, learned (the data's mel inverter) or vocos "
                                              "(a Vocos-style vocoder), each trained once and cached, to turn "
                                              "clips into sound")] = "griffin-lim",
    clip: Annotated[Optional[Path], typer.Option(help="text-to-image runs: a clip run that gives the CLIP-score of "
                                                      "the images with their captions")] = None,
    frame_lag: Annotated[Optional[int], typer.Option(help="video, ddim: each frame starts denoising this many "
                                                     "steps after the one before")] = None,
) -> None:
    """Evaluate a run; writes RUN_DIR/eval/metrics.json and prints a table (or the JSON with --json)."""
    from ..evaluation.evaluate import evaluate_run
    from ..evaluation.extractors import INCEPTION_HELP

    if extractor not in EXTRACTORS:
        raise AigcError(f"--extractor must be one of {', '.join(EXTRACTORS)}, got {extractor!r}")
    if extractor == "inception" and inception_weights is None:
        raise AigcError(f"--extractor inception needs --inception-weights FILE: {INCEPTION_HELP}")
    if extractor != "inception" and inception_weights is not None:
        raise AigcError("--inception-weights is for --extractor inception; add that or drop the weights")
    if inception_weights is not None and not inception_weights.is_file():
        raise AigcError(f"--inception-weights {inception_weights} is not a file; {INCEPTION_HELP}")
    sweep_steps = _parse_sweep(sweep)
    check_seed(seed)
    check_precision(precision)
    options = {k: v for k, v in {"sampler": sampler, "steps": steps, "guidance": guidance}.items() if v is not None}
    _check_inputs(run_dir, n, extractor, options, sweep_steps, seed, precision)

    result = evaluate_run(run_dir, n=n, extractor=extractor, inception_weights=inception_weights, seed=seed,
                          sweep=sweep_steps, precision=precision, image_size=image_size, vocoder=vocoder,
                          clip_run=clip, frame_lag=frame_lag, **options)
    if result.get("fallback"):
        err_console.print(f"[yellow]note:[/] {result['fallback']}")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    if result["family"] == "style":
        table = Table(title=f"{run_dir} — {result['model']}, {result['n_images']} held-out {result['dataset']} "
                            f"images; scored with {result['scored_with']}")
        for column in ("metric", "stylised", "unchanged content"):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for key in STYLE_KEYS:
            table.add_row(key, _cell(result[key]), _cell(result["unchanged_content"][key]))
        table.add_row("ms per image", _cell(result["ms_per_image"]), "")
        Console().print(table)
        err_console.print(f"wrote {Path(run_dir) / 'eval' / 'metrics.json'}")
        return
    if result.get("video"):
        Console().print(_video_table(run_dir, result))
        err_console.print(f"wrote {Path(run_dir) / 'eval' / 'metrics.json'}")
        return
    table = Table(title=f"{run_dir} — {result['model']} on {result['dataset']}, {result.get('n_samples', 0)} "
                        f"samples, {result.get('extractor', 'validation text')}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    text = result["family"] == "lm"
    for key in TEXT_KEYS if text else TABLE_KEYS:
        if key in result:
            table.add_row(key, _cell(result[key]))
    if not text:
        if result.get("conditional_accuracy"):
            table.add_row("conditional accuracy", f"{result['conditional_accuracy']['overall']:.3f}")
        table.add_row("near-copies of training images", f"{result['memorisation']['near_copy_fraction']:.3f}")
        likelihood = result.get("likelihood")
        if likelihood and likelihood.get("bits_per_dim") is not None:
            table.add_row("bits/dim (" + likelihood["bound"].split(",")[0] + ")", f"{likelihood['bits_per_dim']:.4f}")
    Console().print(table)
    if result.get("audio"):
        Console().print(_audio_table(result["audio"]))
    if result.get("text_to_image"):
        Console().print(_text_to_image_table(result["text_to_image"]))
    if result.get("clip_score"):
        Console().print(_clip_score_table(result["clip_score"]))
    err_console.print(f"wrote {Path(run_dir) / 'eval' / 'metrics.json'}")


def _video_table(run_dir: Path, result: dict):
    """A video run's clips scored beside the real held-out clips and the repeated-frame baseline."""
    from rich.table import Table

    from ..evaluation.video import VIDEO_ROWS

    video = result["video"]
    table = Table(title=f"{run_dir} — {result['model']} on {result['dataset']}, {result['n_samples']} clips of "
                        f"{result['frames']} frames, scored by {video['extractor']['extractor']} (not I3D)")
    for column in ("clips", "FVD-style", "per-frame FID", "identity kept (digits apart)", "consistent",
                   "mostly consistent", "frame agreement", "majority = labels"):
        table.add_column(column, justify="left" if column == "clips" else "right")
    for key, name in VIDEO_ROWS.items():
        if key not in video:
            continue
        row = video[key]
        kept = row.get("identity_kept_share")  # None where no clip had two frames with its digits apart
        table.add_row(name, _cell(row["fvd_style"]), _cell(row["frame_fid"]), "—" if kept is None else f"{kept:.3f}",
                      f"{row['consistent_share']:.3f}",
                      f"{row['mostly_consistent_share']:.3f}", f"{row['frame_agreement']:.3f}",
                      _cell(row.get("majority_is_labels")))
    return table


AUDIO_ROWS = {"generated_as_heard": "generated, as heard", "generated_spectrograms": "generated, its spectrograms",
              "real_test": "real test split", "real_test_griffin_lim": "real test, through the vocoder",
              "real_train_1000": "1,000 real training clips"}


def _audio_table(audio: dict):
    """An audio run's clips scored as heard, beside the ceilings."""
    from rich.table import Table

    table = Table(title=f"as heard ({audio['vocoder']}), the spoken-digit evaluator")
    for column in ("clips", "n", "accuracy", "classifier score", "Fréchet distance"):
        table.add_column(column, justify="left" if column == "clips" else "right")
    for key, name in AUDIO_ROWS.items():
        row = audio[key]
        table.add_row(name, str(row["n"]), f"{row['accuracy']['overall']:.3f}", f"{row['classifier_score']:.2f}",
                      _cell(row["frechet_distance"]))
    return table


def _text_to_image_table(scores: dict):
    """What the captions asked for, found in the generated images and in the real test canvases."""
    from rich.table import Table

    evaluators = scores["evaluators"]
    found_by = ", ".join(f"{e['image_size']} px ({e['held_out_accuracy']:.3f} on its test split)" for e in evaluators)
    table = Table(title=f"what the captions ask for (items found by the {evaluators[0]['dataset']} evaluators at "
                        f"{found_by})")
    for column in ("images", "captions", "class", "position", "item (both)", "whole caption"):
        table.add_column(column, justify="left" if column == "images" else "right")
    for source in ("generated", "real_test"):
        for name, row in scores[source].items():
            table.add_row(f"{'generated' if source == 'generated' else 'real'}, {name.replace('_', '-')}",
                          str(row["captions"]),
                          f"{row['class_accuracy']:.3f}", f"{row['position_accuracy']:.3f}",
                          f"{row['item_accuracy']:.3f}", f"{row['caption_accuracy']:.3f}")
    return table


def _clip_score_table(scores: dict):
    """CLIP-score of the generated images with their captions, beside the real canvases' with theirs and with
    another's."""
    from rich.table import Table

    judge = scores["extractor"]["extractor"] + (" (the generator reads captions through its text encoder)"
                                                if scores["generator_reads_its_text_encoder"] else "")
    table = Table(title=f"CLIP-score, by {judge}")
    for column in ("captions", "generated", "real test", "real test, another's caption"):
        table.add_column(column, justify="left" if column == "captions" else "right")
    for name, row in scores.items():
        if isinstance(row, dict) and "generated" in row:
            table.add_row(name.replace("_", "-"), f"{row['generated']:.1f}", f"{row['real_test']:.1f}",
                          f"{row['real_test_other_caption']:.1f}")
    return table
