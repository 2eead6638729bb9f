"""Checkpoints: config.json + safetensors weights (like `save_pretrained`), training state, atomic writes.

    checkpoints/step-000500/
      config.json                 family, model config, versions, sha256 of every file below
      model.safetensors           weights of the model
      ema.safetensors             exponential moving average of the weights, when EMA is on
      training_state.safetensors  optimizer tensors
      training_state.json         step, optimizer hyper-parameters and scalars
      rng_state_rank{r}.safetensors  each process's random generator state

Nothing here unpickles: a checkpoint is tensors and JSON only.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file
from torch import nn

from . import __version__
from .atomic import atomic_directory, atomic_write_text
from .config import build_dataclass, to_dict
from .errors import CheckpointError
from .family import FAMILIES, FamilyBase

__all__ = [
    "FORMAT_VERSION",
    "atomic_directory",
    "atomic_write_text",
    "checkpoint_sha256",
    "save_pretrained",
    "save_state_dict",
    "from_pretrained",
    "load_weights",
    "latest_checkpoint",
    "list_checkpoints",
    "optimizer_state_to_tensors",
    "optimizer_state_from_tensors",
    "verify_checkpoint",
    "write_manifest",
    "read_training_state",
    "save_training_state",
]

FORMAT_VERSION = 2  # 2: config.json carries its own sha256
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_STEP_DIR = re.compile(r"^step-(\d+)$")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_sha256(checkpoint: Path) -> str:
    """What identifies a checkpoint: the digest aigckit's config.json records of itself (it covers every file's
    sha256), or for a transformers directory the sha256 of its config and weight files."""
    manifest = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    if "config_sha256" in manifest:
        return manifest["config_sha256"]
    digest = hashlib.sha256()
    for path in sorted(checkpoint.glob("*.json")) + sorted(checkpoint.glob("*.safetensors")):
        digest.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def save_pretrained(directory: Path, model: nn.Module, family: str | FamilyBase, *,
                    ema: nn.Module | None = None) -> None:
    """Write the model's weights (and the EMA's) through its family, then config.json, into `directory`.

    config.json is written last and records each file's sha256 and its own, so tampering is detected on load.
    """
    family = FAMILIES.get(family) if isinstance(family, str) else family
    directory = Path(directory)
    family.save_weights(model, directory, "model")
    if ema is not None:
        family.save_weights(ema, directory, "ema")
    write_manifest(directory, {"family": family.name, "model": to_dict(model.config),
                               **family.checkpoint_fields(model)})


def save_state_dict(module: nn.Module, path: Path) -> None:
    """Save a module's tensors as safetensors: CPU copies, a tied tensor once (under its first name, which
    `load_model` then prefers); tensors that merely share one buffer, as cuDNN packs an LSTM's weights, become
    separate copies."""
    tensors: dict[str, torch.Tensor] = {}
    seen = set()
    for name, tensor in module.state_dict().items():
        key = (tensor.device, tensor.data_ptr(), tensor.shape, tensor.stride())
        if key not in seen:
            seen.add(key)
            # contiguous, as safetensors requires: a channels-last weight is stored in the standard layout
            tensors[name] = tensor.detach().to("cpu", copy=True, memory_format=torch.contiguous_format)
    save_file(tensors, str(path), metadata={"format": "pt"})


def _manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON without its own digest field."""
    body = {k: v for k, v in manifest.items() if k != "config_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def write_manifest(directory: Path, fields: dict[str, Any]) -> None:
    """config.json: `fields` plus versions, the sha256 of every other file in `directory` and of itself."""
    directory = Path(directory)
    files = {p.relative_to(directory).as_posix(): _sha256(p) for p in sorted(directory.rglob("*"))
             if p.is_file() and p.name != "config.json"}
    manifest = {"format_version": FORMAT_VERSION, "aigckit_version": __version__, **fields, "files": files}
    manifest["config_sha256"] = _manifest_digest(manifest)
    atomic_write_text(Path(directory) / "config.json", json.dumps(manifest, indent=2) + "\n")


def verify_checkpoint(directory: Path) -> dict[str, Any]:
    """Read config.json and check every listed file's sha256; raise CheckpointError on any mismatch."""
    directory = Path(directory)
    pickles = [p.name for p in directory.glob("*") if p.suffix in PICKLE_SUFFIXES]
    if pickles and not (directory / "model.safetensors").exists():
        raise CheckpointError(f"{directory} holds only pickle files ({', '.join(pickles)}); aigckit loads "
                              f"safetensors only, never pickles: convert the weights with safetensors first")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{directory} has no config.json; it is not an aigckit checkpoint or run directory")
    try:
        manifest = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{config_path} is damaged (not JSON); resume from an earlier checkpoint") from None
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{directory} was written by a newer aigckit ({manifest.get('aigckit_version')}, "
                              f"format {manifest['format_version']}); upgrade aigckit to load it")
    if manifest.get("format_version", 0) >= 2 and manifest.get("config_sha256") != _manifest_digest(manifest):
        raise CheckpointError(f"{config_path} is damaged or was modified (sha256 mismatch); use an earlier checkpoint")
    for name, expected in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing; the checkpoint is incomplete, use an earlier one")
        if _sha256(path) != expected:
            raise CheckpointError(f"{path} is damaged or was modified (sha256 mismatch); use an earlier checkpoint")
    return manifest


def load_weights(module: nn.Module, path: Path) -> None:
    """Load a safetensors file into `module` strictly; damaged files raise CheckpointError."""
    try:
        missing, unexpected = load_model(module, str(path), strict=False)
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"{path} cannot be read as safetensors ({error}); use an earlier checkpoint") from None
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit the model (missing {sorted(missing)[:3]}, unexpected "
                              f"{sorted(unexpected)[:3]}); the checkpoint belongs to another configuration")


def from_pretrained(directory: Path, *, use_ema: bool = True, config_overrides: dict[str, Any] | None = None) -> nn.Module:
    """Rebuild the model from config.json through the family registry and load its weights.

    config_overrides: model config fields to replace first (a LoRA run's base model that moved: pretrained)."""
    directory = Path(directory)
    manifest = verify_checkpoint(directory)
    family = FAMILIES.get(manifest["family"])
    config = build_dataclass(family.config_class, {**manifest["model"], **(config_overrides or {})}, "model.")
    model = family.build_from_checkpoint(config, directory, manifest)
    has_ema = any(name.startswith(("ema.", "ema/")) for name in manifest.get("files", {}))
    family.load_weights(model, directory, "ema" if use_ema and has_ema else "model")
    return model.eval()


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run (renamed into place), oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and _STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest complete checkpoint of `run_dir`, or CheckpointError saying what to do."""
    run_dir = Path(run_dir)
    if (run_dir / "config.json").is_file():  # a checkpoint directory itself
        return run_dir
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise CheckpointError(f"{run_dir} has no checkpoints; train first (aigckit train CONFIG --run-dir {run_dir})")
    return checkpoints[-1]


def optimizer_state_to_tensors(name: str, state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state dict (`Optimizer.state_dict()`) into tensors (for safetensors) and JSON-able
    rest."""
    tensors, scalars = {}, {}
    for param_id, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}.{param_id}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_state_from_tensors(name: str, tensors: dict[str, torch.Tensor], rest: dict) -> dict[str, Any]:
    """Inverse of optimizer_state_to_tensors: the optimizer's state dict."""
    state: dict[int, dict[str, Any]] = {}
    prefix = f"{name}."
    for key, value in tensors.items():
        if key.startswith(prefix):
            param_id, field = key[len(prefix):].split(".", 1)
            state.setdefault(int(param_id), {})[field] = value
    for param_id, values in rest["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    return {"state": state, "param_groups": rest["param_groups"]}


def read_training_state(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The optimizer tensors and the JSON training state of a verified checkpoint."""
    directory = Path(directory)
    try:
        tensors = load_file(str(directory / "training_state.safetensors"))
        meta = json.loads((directory / "training_state.json").read_text(encoding="utf-8"))
    except (SafetensorError, OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{directory} has no readable training state ({error}); it cannot be resumed") from None
    return tensors, meta


def save_training_state(directory: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write training_state.safetensors and training_state.json into `directory`."""
    save_file(tensors, str(Path(directory) / "training_state.safetensors"))
    atomic_write_text(Path(directory) / "training_state.json", json.dumps(meta, indent=2) + "\n")
