"""The family contract and the registry families put themselves in; the core knows no family by name.

A family (gan, vae, diffusion, lm, ...) registers an instance of a `FamilyBase` subclass in FAMILIES. Its
optional abilities are declared in `capabilities`, never probed with hasattr, so a pipeline asks
`family.supports("inpaint")` and gets a clear answer; `require` turns a missing one into one line for the user.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from .errors import AigcError
from .registry import Registry

__all__ = ["StepOutput", "Batch", "FamilyBase", "FAMILIES", "CAPABILITIES", "family_for_model"]

# "images": (B, C, H, W) in [-1, 1], "labels": (B,) when the data has classes, or "tokens" (B, T + 1) for text;
# "seeds": (B,) the seed of each example's training noise (layers.ExampleNoise)
Batch = dict[str, Tensor]

# Optional methods a family may provide, and what each is for.
CAPABILITIES: dict[str, str] = {
    "inpaint": "inpaint(model, images, known, ...): repaint the pixels where known == 0",
    "log_likelihood": "log_likelihood(model, images, labels, ...): a bound on -log p(x)",
    "encode": "encode/decode/reconstruct/interpolate through a latent space",
    "training_flops": "training_flops_per_example(model): FLOPs of one training example, for MFU",
    "text_samples": "write_samples(model, run_dir, step, generator): the family's own periodic sample file",
}


class StepOutput(NamedTuple):
    """One loss for one named optimizer; the Trainer runs backward and steps that optimizer."""

    optimizer: str
    loss: Tensor
    logs: dict[str, Tensor | float]


class FamilyBase:
    """A family of generative models; see DESIGN.md, 'The family contract'.

    Subclasses set the class attributes and implement build, optimizers, training_step and sample, plus the
    methods named in `capabilities`. Weights are saved and loaded through `save_weights` / `load_weights`, which
    a family overrides only when its checkpoint is not one safetensors file of the whole model (LoRA adapters).
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    models: ClassVar[dict[str, str]]  # model name -> one-line description
    presets: ClassVar[dict[str, dict[str, Any]]]  # preset name ("tiny", ...) -> model config values
    modality: ClassVar[str] = "image"  # what sample() returns: "image" (B, C, H, W) or "text" (B, T) token ids
    capabilities: ClassVar[frozenset[str]] = frozenset()  # keys of CAPABILITIES this family implements
    sample_options: ClassVar[frozenset[str]] = frozenset()  # keyword options of sample() beyond labels, generator
    inpaint_method: ClassVar[str | None] = None  # the name users pick the family's inpainting by ("repaint")
    inpaint_options: ClassVar[frozenset[str]] = frozenset()  # keyword options of inpaint() beyond labels, generator

    def build(self, config: Any) -> nn.Module:
        """Build the networks; the returned module keeps `config` as `.config`."""
        raise NotImplementedError

    def optimizers(self, model: nn.Module, config: Any) -> dict[str, torch.optim.Optimizer]:
        """Named optimizers, stepped in the order training_step yields them."""
        raise NotImplementedError

    def networks(self, model: nn.Module) -> dict[str, nn.Module]:
        """The network each optimizer trains, by optimizer name; the Trainer wraps each one for data parallelism
        (DDP, FSDP) and hands the wrapped ones to training_step. By default the whole model, for one optimizer
        called "model"."""
        return {"model": model}

    def training_step(self, model: nn.Module, batch: Batch, step: int,
                      nets: dict[str, nn.Module]) -> Iterator[StepOutput]:
        """Yield one StepOutput per optimizer update of this step.

        The forward pass whose loss trains optimizer k's network runs through `nets[k]` (its wrapped form, whose
        hooks synchronise gradients across processes); other calls (a frozen network, sampling) use `model`.
        Random draws come from `ExampleNoise(batch["seeds"], ...)`, so they do not depend on the number of
        processes."""
        raise NotImplementedError

    def sample(self, model: nn.Module, n: int, *, labels: Tensor | None = None,
               generator: torch.Generator | None = None, **options: Any) -> Tensor:
        """Generate n samples (images (n, C, H, W) in [-1, 1], or token ids (n, T))."""
        raise NotImplementedError

    # ---------------------------------------------------------------- capabilities
    def supports(self, capability: str) -> bool:
        """Whether this family provides `capability` (a key of CAPABILITIES; an unknown one raises)."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}; known: {', '.join(CAPABILITIES)}")
        return capability in self.capabilities

    def require(self, capability: str, what: str) -> None:
        """Raise AigcError saying that this family cannot do `what` unless it supports `capability`."""
        if not self.supports(capability):
            able = [name for name in FAMILIES if capability in FAMILIES.get(name).capabilities]
            raise AigcError(f"{self.name} models cannot {what}; models of the {', '.join(able) or 'no'} "
                            f"{'family' if len(able) == 1 else 'families'} can")

    def check_sample_options(self, options: dict[str, Any], model_name: str, model: nn.Module | None = None) -> None:
        """Refuse sampling options this family does not take (and, given the model, values it cannot sample with:
        a family's override), in one line."""
        for option in options:
            if option not in self.sample_options:
                known = ", ".join(sorted(self.sample_options)) or "none"
                raise AigcError(f"{option} does not apply to {model_name} models (their options: {known}); drop it")

    def describe_sample_options(self, model: nn.Module) -> dict[str, dict[str, Any]]:
        """The sampling options a user may set on `model`, for forms and APIs: name -> {"type", "default", and
        "choices" or "min"/"max"}; none by default."""
        return {}

    # ---------------------------------------------------------------- weights on disk
    def save_weights(self, model: nn.Module, directory: Path, name: str) -> None:
        """Write `model`'s weights into `directory` as `<name>.safetensors` (name: "model" or "ema")."""
        from .checkpoint import save_state_dict

        save_state_dict(model, Path(directory) / f"{name}.safetensors")

    def load_weights(self, model: nn.Module, directory: Path, name: str) -> None:
        """Load the weights `save_weights` wrote under `name` into `model`, strictly."""
        from .checkpoint import load_weights

        load_weights(model, Path(directory) / f"{name}.safetensors")

    def checkpoint_fields(self, model: nn.Module) -> dict[str, Any]:
        """Extra JSON fields recorded in a checkpoint's config.json (none by default)."""
        return {}

    def build_from_checkpoint(self, config: Any, directory: Path, manifest: dict[str, Any]) -> nn.Module:
        """The untrained networks a checkpoint's weights load into; by default `build(config)`."""
        return self.build(config)


FAMILIES: Registry[FamilyBase] = Registry("model family")


def family_for_model(model_name: str) -> FamilyBase:
    """The registered family that provides the model called `model_name` (e.g. 'dcgan' -> gan)."""
    for family_name in FAMILIES:
        family = FAMILIES.get(family_name)
        if model_name in family.models:
            return family
    known = sorted(m for f in FAMILIES for m in FAMILIES.get(f).models)
    raise AigcError(f"unknown model {model_name!r}; known: {', '.join(known)}")
