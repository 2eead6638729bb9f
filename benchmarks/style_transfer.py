"""Style transfer: Gatys' optimisation at 256x256, ours against the PyTorch tutorial's way re-created here, in one run.

    python benchmarks/style_transfer.py [--size 256] [--steps 300] [--coarse-steps 150] [--vgg-weights FILE]

Both optimise scikit-image's astronaut in the style of its coffee photo with the same features (VGG-19: relu4_2
for content, relu1_1 ... relu5_1 for style; untrained weights when no file is given, which costs the same
arithmetic as the trained network, so the times hold though the picture does not), the same relative losses and
weights, and L-BFGS, for --steps evaluations of the losses. The tutorial's way
(https://pytorch.org/tutorials/advanced/neural_style_tutorial.html): loss modules inside a Sequential copy of the
network, NCHW fp32, the tutorial's Gram matrix (one mm, autograd's backward), the image clamped inside every
closure, L-BFGS with PyTorch's defaults (no line search). Ours: `aigckit.pipelines.style.stylize_gatys`
(channels_last, aigckit.style.losses.gram's one-matmul backward, strong-Wolfe line search, in fp32 and in the
precision `auto` picks, and coarse to fine in that precision: --coarse-steps evaluations at half the size first,
then --steps at full size). Reported: seconds to reach the loss the tutorial's way ends at (full-size losses only),
seconds per evaluation, and the final losses. Writes benchmarks/results/style_transfer.{json,md}.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata
from torch import Tensor, nn

from aigckit.pipelines.style import prepare_pair, stylize_gatys
from aigckit.precision import resolve_precision
from aigckit.style.features import VGG_LAYERS, VGG19Features, load_vgg19
from timing import machine, write_results

CONTENT_WEIGHT, STYLE_WEIGHT = 1.0, 1e3


def tutorial_gram(features: Tensor) -> Tensor:
    """The tutorial's gram_matrix, normalised as ours (by C*H*W at batch 1): one mm, autograd's backward."""
    b, c, h, w = features.shape
    flat = features.view(b * c, h * w)
    return torch.mm(flat, flat.t()).div(b * c * h * w)


class _Loss(nn.Module):
    """The tutorial's loss module: passes its input on and keeps its relative error against a fixed target."""

    def __init__(self, target: Tensor, of_gram: bool) -> None:
        super().__init__()
        self.target, self.of_gram, self.loss = target.detach(), of_gram, torch.zeros(())

    def forward(self, x: Tensor) -> Tensor:
        value = tutorial_gram(x) if self.of_gram else x
        self.loss = torch.mean((value - self.target) ** 2) / torch.mean(self.target ** 2)
        return x


def tutorial_way(network: VGG19Features, content: Tensor, style: Tensor, steps: int) -> list[tuple[float, float]]:
    """(seconds, total loss) after every evaluation, the tutorial's way."""
    started = time.perf_counter()
    names = {index: name for name, index in VGG_LAYERS.items()}
    model, content_losses, style_losses = nn.Sequential(), [], []
    normalise = lambda x: (x - network.mean) / network.std  # noqa: E731 - the tutorial's Normalization module
    deepest = max(VGG_LAYERS[n] for n in network.content_layers + network.style_layers)
    for index, module in enumerate(network.features[:deepest + 1]):
        model.add_module(str(index), module)
        name = names.get(index)
        if name in network.content_layers:
            loss = _Loss(model(normalise(content)), of_gram=False)
            model.add_module(f"content_{name}", loss)
            content_losses.append(loss)
        if name in network.style_layers:
            loss = _Loss(tutorial_gram(model(normalise(style))), of_gram=True)
            model.add_module(f"style_{name}", loss)
            style_losses.append(loss)
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image])
    history: list[tuple[float, float]] = []

    def closure() -> Tensor:
        with torch.no_grad():
            image.clamp_(0, 1)
        optimizer.zero_grad()
        model(normalise(image))
        total = (CONTENT_WEIGHT * sum(l.loss for l in content_losses) / len(content_losses)
                 + STYLE_WEIGHT * sum(l.loss for l in style_losses) / len(style_losses))
        total.backward()
        history.append((time.perf_counter() - started, float(total.detach())))
        return total

    while len(history) < steps:
        optimizer.step(closure)
    return history


def ours(network: VGG19Features, content: Image.Image, style: Image.Image, size: int, steps: int,
         precision: str, coarse_steps: int = 0) -> list[tuple[float, float, int]]:
    """(seconds, total loss, size) after every evaluation, with stylize_gatys."""
    history: list[tuple[float, float, int]] = []
    started = time.perf_counter()
    stylize_gatys(content, style, size=size, steps=steps, content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT,
                  features=network, precision=precision, coarse_steps=coarse_steps,
                  on_step=lambda step, losses, image: history.append((time.perf_counter() - started,
                                                                      losses["total"], losses["size"])))
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--coarse-steps", type=int, default=150)
    parser.add_argument("--vgg-weights", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    network = load_vgg19(args.vgg_weights) if args.vgg_weights else VGG19Features().eval().requires_grad_(False)
    content_image, style_image = Image.fromarray(skdata.astronaut()), Image.fromarray(skdata.coffee())
    content, style = (torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)[None].contiguous()
                      for im in prepare_pair(content_image, style_image, args.size, preserve_color=False))

    runs = {"tutorial's way (fp32, NCHW)": [(seconds, loss, args.size) for seconds, loss
                                            in tutorial_way(network, content, style, args.steps)]}
    target = runs["tutorial's way (fp32, NCHW)"][-1][1]
    runs["aigckit, fp32"] = ours(network, content_image, style_image, args.size, args.steps, "fp32")
    auto = resolve_precision("auto", "cpu")
    if auto.name != "fp32":
        runs[f"aigckit, {auto.name} (auto)"] = ours(network, content_image, style_image, args.size, args.steps, "auto")
    if args.coarse_steps:
        runs[f"aigckit, {auto.name}, coarse to fine"] = ours(network, content_image, style_image, args.size,
                                                            args.steps, "auto", args.coarse_steps)

    baseline = runs["tutorial's way (fp32, NCHW)"][-1][0]
    lines = [f"Gatys at {args.size}×{args.size}, {args.steps} evaluations, features: {network.description}; "
             f"target: the tutorial's final loss {target:.4g}", "",
             "| implementation | evaluations (half size + full) | s to the target | speed-up | s per evaluation "
             "(full size) | final loss |", "|---|---|---|---|---|---|"]
    rows = {}
    for name, history in runs.items():
        full = [(t, loss) for t, loss, size in history if size == args.size]
        reached = next((t for t, loss in full if loss <= target), None)
        coarse = len(history) - len(full)
        # a full-size evaluation's time: from the end of the coarse stage (or the start) to the end, per evaluation
        full_seconds = history[-1][0] - (history[coarse - 1][0] if coarse else 0.0)
        rows[name] = {"seconds_to_target": reached, "seconds_total": history[-1][0],
                      "seconds_per_evaluation": full_seconds / len(full), "final_loss": history[-1][1],
                      "evaluations": len(full), "coarse_evaluations": coarse}
        cells = (f"{reached:.1f} | {baseline / reached:.2f}×" if reached else "not reached | —")
        lines.append(f"| {name} | {f'{coarse} + ' if coarse else ''}{len(full)} | {cells} | "
                     f"{rows[name]['seconds_per_evaluation']:.3f} | {history[-1][1]:.4g} |")
    write_results("style_transfer", {"machine": machine(), "torch": torch.__version__, "size": args.size,
                                     "steps": args.steps, "coarse_steps": args.coarse_steps,
                                     "features": network.description, "target_loss": target, "runs": rows}, lines)


if __name__ == "__main__":
    main()
