"""Whole weights and optimizer states of networks FSDP has sharded across processes, in the layout of an unsharded
checkpoint (an optimizer's state numbered by parameter, as `Optimizer.state_dict()` numbers it), and back.

FSDP keeps each parameter and its optimizer state in shards; a checkpoint holds them whole, so that a run saved
under FSDP loads into one process for sampling, evaluation and serving like any other run.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

__all__ = ["full_model_state", "full_optimizer_state", "load_full_optimizer_state"]

_GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)  # whole tensors, on process 0's CPU only


def full_model_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """The whole state dict of a sharded network on process 0 (empty on the others); every process must call."""
    return get_model_state_dict(net, options=_GATHER)


def full_optimizer_state(net: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The whole optimizer state on process 0, numbered by parameter (empty on the others); every process must
    call."""
    by_name = get_optimizer_state_dict(net, optimizer, options=_GATHER)
    if not by_name:
        return {}
    names = [name for group in by_name["param_groups"] for name in group["params"]]
    number = {name: i for i, name in enumerate(names)}
    groups, first = [], 0
    for group in by_name["param_groups"]:
        count = len(group["params"])
        groups.append({**group, "params": list(range(first, first + count))})
        first += count
    return {"state": {number[name]: values for name, values in by_name["state"].items()}, "param_groups": groups}


def load_full_optimizer_state(net: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a whole optimizer state numbered by parameter (full_optimizer_state's layout) into a sharded optimizer;
    every process gives the same state and keeps its own shards."""
    names = {id(p): name for name, p in net.named_parameters()}
    ordered = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    groups = [{**saved, "params": [ordered[i] for i in saved["params"]]} for saved in state["param_groups"]]
    by_name = {"state": {ordered[int(i)]: values for i, values in state["state"].items()}, "param_groups": groups}
    set_optimizer_state_dict(net, optimizer, by_name, options=StateDictOptions(full_state_dict=True))
