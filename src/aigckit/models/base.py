"""The family contract: what every model family provides to the Trainer and to pipelines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor, nn

from ..errors import AigcError
from ..registry import Registry

__all__ = ["StepOutput", "Family", "FAMILIES", "family_for_model", "Batch"]

Batch = dict[str, Tensor]  # "images": (B, C, H, W) in [-1, 1]; "labels": (B,) when the data has classes


class StepOutput(NamedTuple):
    """One loss for one named optimizer; the Trainer runs backward and steps that optimizer."""

    optimizer: str
    loss: Tensor
    logs: dict[str, Tensor | float]


class Family(Protocol):
    """A family of generative models (gan, vae, diffusion, lm); see DESIGN.md, 'The family contract'."""

    name: str
    config_class: type
    models: dict[str, str]  # model name -> one-line description
    presets: dict[str, dict[str, Any]]  # preset name ("tiny", ...) -> model config values

    def build(self, config: Any) -> nn.Module:
        """Build the networks; the returned module keeps `config` as `.config`."""

    def optimizers(self, model: nn.Module, config: Any) -> dict[str, torch.optim.Optimizer]:
        """Named optimizers, stepped in the order training_step yields them."""

    def training_step(self, model: nn.Module, batch: Batch, step: int) -> Iterator[StepOutput]:
        """Yield one StepOutput per optimizer update of this step."""

    def sample(self, model: nn.Module, n: int, *, labels: Tensor | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """Generate n images, (n, C, H, W) in [-1, 1]."""


FAMILIES: Registry[Family] = Registry("model family")


def family_for_model(model_name: str) -> Family:
    """The registered family that provides the model called `model_name` (e.g. 'dcgan' -> gan)."""
    for family_name in FAMILIES:
        family = FAMILIES.get(family_name)
        if model_name in family.models:
            return family
    known = sorted(m for f in FAMILIES for m in FAMILIES.get(f).models)
    raise AigcError(f"unknown model {model_name!r}; known: {', '.join(known)}")
