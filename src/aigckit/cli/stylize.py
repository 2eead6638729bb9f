"""`aigckit stylize --content C.jpg --style S.jpg --out O.png`: neural style transfer, and `aigckit convert`
for the VGG-19 weights it uses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..atomic import atomic_write_bytes
from ..errors import AigcError
from .common import (PrecisionOption, check_output_file, check_precision, err_console, open_image,
                     require_at_least, user_errors)

__all__ = ["stylize_command", "convert_command"]

METHODS = ("gatys", "fast", "adain")


@user_errors
def stylize_command(
    content: Annotated[Path, typer.Option(help="the image whose content is kept")],
    style: Annotated[Optional[Path], typer.Option(help="the image whose style is taken (gatys, adain; a fast "
                                                  "network has learned its own)")] = None,
    out: Annotated[Path, typer.Option(help="PNG file to write the result to")] = Path("stylized.png"),
    method: Annotated[str, typer.Option(help="gatys (optimises the image), fast or adain (one pass of a trained "
                                             "network: --run)")] = "gatys",
    run: Annotated[Optional[Path], typer.Option(help="fast, adain: the run directory of the trained network")] = None,
    alpha: Annotated[float, typer.Option(help="adain: 0 keeps the content's feature statistics, 1 takes the "
                                              "style's")] = 1.0,
    size: Annotated[int, typer.Option(help="the result's longer side in pixels (the content is resized to it)")] = 256,
    steps: Annotated[int, typer.Option(help="L-BFGS: evaluations of the losses (as the PyTorch tutorial counts "
                                           "them); Adam: iterations")] = 300,
    coarse_steps: Annotated[int, typer.Option(help="gatys: evaluations at half the size first, the result "
                                                   "upsampled plus the content's finer detail to start from "
                                                   "(coarse to fine)")] = 0,
    optimizer: Annotated[str, typer.Option(help="lbfgs or adam")] = "lbfgs",
    content_weight: Annotated[float, typer.Option(help="weight of the content loss")] = 1.0,
    style_weight: Annotated[float, typer.Option(help="weight of the style loss (both losses are relative to "
                                                     "their targets)")] = 1e3,
    tv_weight: Annotated[float, typer.Option(help="weight of the total-variation smoothness loss")] = 0.0,
    preserve_color: Annotated[bool, typer.Option("--preserve-color", help="transfer luminance only and keep the "
                                                 "content's colours")] = False,
    vgg_weights: Annotated[Optional[Path], typer.Option(help="VGG-19 safetensors file (see `aigckit convert`) "
                                                        "[default: $AIGCKIT_VGG19 or the cache folder]")] = None,
    download: Annotated[bool, typer.Option("--download/--no-download", help="fetch torchvision's VGG-19 weights "
                                           "into the cache folder when they are missing and a network answers")] = True,
    save_every: Annotated[Optional[int], typer.Option(help="also write the image every N steps "
                                                      "(OUT-stepN.png)")] = None,
    precision: PrecisionOption = "auto",
    watermark: Annotated[bool, typer.Option("--watermark/--no-watermark", help="embed the invisible watermark "
                                            "(the opt-out is recorded in the PNG)")] = True,
) -> None:
    """Render the content image in a style: Gatys' optimisation, or one pass of a trained fast or AdaIN network;
    watermarked, with its provenance."""
    from rich.progress import Progress

    from ..evaluation.metrics.style import style_scores
    from ..pipelines.style import OPTIMIZERS, stylize_gatys
    from ..provenance.marking import configured, marked_png
    from ..style.features import RandomMultiScale, feature_network

    if method not in METHODS:
        raise AigcError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
    if method != "gatys":
        return _stylize_with_network(method, run, content, style, out, size, alpha, preserve_color, precision,
                                     watermark)
    if run is not None:
        raise AigcError("--run names a trained network, which gatys does not use; drop it or pick --method fast/adain")
    if style is None:
        raise AigcError("gatys needs the style image: pass --style")
    if optimizer not in OPTIMIZERS:
        raise AigcError(f"unknown optimizer {optimizer!r}; use {' or '.join(OPTIMIZERS)}")
    require_at_least(1, steps=steps, save_every=save_every)
    require_at_least(0, coarse_steps=coarse_steps)
    require_at_least(16, size=size)
    check_output_file(out)
    check_precision(precision)
    content_image, style_image = open_image(content, "--content"), open_image(style, "--style")
    key, credentials = configured(watermark)
    network = feature_network(vgg_weights, download=download)
    if isinstance(network, RandomMultiScale):
        err_console.print(f"features: {network.description}: no VGG-19 weights in $AIGCKIT_VGG19 or the cache "
                          f"folder and none downloaded (`aigckit convert` makes them), so random filters' texture "
                          f"statistics stand in")

    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("gatys", total=coarse_steps + steps)

        def on_step(step: int, losses: dict[str, float], image) -> None:
            progress.update(task, completed=step, description=f"gatys {losses['size']:.0f} px  style "
                                                              f"{losses['style']:.3g}  content {losses['content']:.3g}")
            if save_every and step % save_every == 0 and step < coarse_steps + steps:
                snapshot = out.with_name(f"{out.stem}-step{step}.png")
                atomic_write_bytes(snapshot, marked_png(image(), {"method": "gatys", "step": step},
                                                        key=key)[0])

        result = stylize_gatys(content_image, style_image, size=size, steps=steps, optimizer=optimizer,
                               content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
                               preserve_color=preserve_color, features=network, precision=precision,
                               coarse_steps=coarse_steps, on_step=on_step)
    info = result.info
    scores = style_scores(result.image, content_image, style_image)
    metadata = {"method": "gatys", "content": content.name, "style": style.name, "features": info["features"],
                "optimizer": optimizer, "steps": steps, "coarse_steps": coarse_steps, "size": size,
                "content_weight": content_weight, "style_weight": style_weight, "tv_weight": tv_weight,
                "preserve_color": int(preserve_color), **{k: round(v, 6) if isinstance(v, float) else v
                                                          for k, v in scores.items()}}
    data, _ = marked_png(result.image, metadata, key=key, credentials=credentials)
    atomic_write_bytes(out, data)
    final = info["final_losses"]
    err_console.print(f"wrote {out} ({result.image.width}x{result.image.height}, {info['seconds']:.1f} s; style "
                      f"loss {info['first_losses']['style']:.3g} -> {final['style']:.3g}; "
                      f"{'watermarked' if key else 'not watermarked'})")
    err_console.print(f"scores ({scores['scored_with']}): style distance {scores['style_distance']:.3g}, patch FD "
                      f"{scores['patch_fd']:.3g}, content SSIM {scores['content_ssim']:.3f}, edge correlation "
                      f"{scores['edge_correlation']:.3f}")


def _stylize_with_network(method: str, run: Path | None, content: Path, style: Path | None, out: Path, size: int,
                          alpha: float, preserve_color: bool, precision: str, watermark: bool) -> None:
    """`stylize --method fast|adain`: one forward pass of a trained stylizer, scored and written like gatys."""
    from ..evaluation.metrics.style import style_scores
    from ..pipelines import load
    from ..pipelines.style import learned_style, stylize_with_pipeline
    from ..provenance.marking import configured, marked_png

    if run is None:
        raise AigcError(f"--method {method} runs a trained network: pass --run RUN_DIR (aigckit train "
                        f"configs/{'fast-style' if method == 'fast' else 'adain'}-photos.yaml makes one)")
    require_at_least(16, size=size)
    check_output_file(out)
    check_precision(precision)
    content_image = open_image(content, "--content")
    style_image = open_image(style, "--style") if style is not None else None
    key, credentials = configured(watermark)
    pipeline = load(run, precision=precision)
    held = {"fast-style": "fast", "adain": "adain"}.get(pipeline.config.name)
    if held is not None and held != method:
        raise AigcError(f"{run} holds a {held} network; pass --method {held}")
    result = stylize_with_pipeline(pipeline, content_image, style_image, size=size, alpha=alpha,
                                   preserve_color=preserve_color)
    scores = style_scores(result.image, content_image,
                          style_image if style_image is not None else learned_style(pipeline))
    metadata = {**{k: v for k, v in result.info.items() if isinstance(v, (str, int, float, bool))},
                "run": str(run), "content": content.name, **({"style": style.name} if style is not None else {}),
                "preserve_color": int(preserve_color),
                **{k: round(v, 6) if isinstance(v, float) else v for k, v in scores.items()}}
    data, _ = marked_png(result.image, metadata, key=key, credentials=credentials)
    atomic_write_bytes(out, data)
    err_console.print(f"wrote {out} ({result.image.width}x{result.image.height}, {method} network, "
                      f"{result.info['seconds'] * 1000:.0f} ms; features it trained with: "
                      f"{result.info['features']}; {'watermarked' if key else 'not watermarked'})")
    err_console.print(f"scores ({scores['scored_with']}): style distance {scores['style_distance']:.3g}, patch FD "
                      f"{scores['patch_fd']:.3g}, content SSIM {scores['content_ssim']:.3f}, edge correlation "
                      f"{scores['edge_correlation']:.3f}")


@user_errors
def convert_command(
    source: Annotated[Path, typer.Argument(help="torchvision's vgg19-dcbb9e9d.pth")],
    out: Annotated[Optional[Path], typer.Option(help="safetensors file to write [default: where stylize looks: "
                                                     "$AIGCKIT_VGG19 or the cache folder]")] = None,
) -> None:
    """Convert torchvision's VGG-19 weights to safetensors once (read with torch.load(weights_only=True))."""
    from ..style.features import convert_vgg19, default_vgg19_path

    out = out or default_vgg19_path()
    if out.suffix != ".safetensors":
        raise AigcError(f"--out {out}: the weights are written as safetensors; give a name ending in .safetensors")
    convert_vgg19(source, out)
    err_console.print(f"wrote {out}")
