"""YAML file + dotted overrides -> frozen, validated dataclasses.

    aigckit train configs/dcgan-digits.yaml train.max_steps=500 model.loss=hinge

Unknown keys and wrong types fail with the key path and a did-you-mean; values parse with
`yaml.safe_load`, never `eval`. Defaults live in one place: the dataclasses.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError
from .family import family_for_model

__all__ = [
    "DataConfig",
    "TrainConfig",
    "RunConfig",
    "load_config",
    "parse_overrides",
    "build_dataclass",
    "config_from_dict",
    "to_dict",
    "require",
    "parse_yaml",
]


class YAMLLoader(yaml.SafeLoader):
    """yaml.SafeLoader that reads 3e-4 and 1E5 as floats, as YAML 1.2 does (YAML 1.1 needs a dot: 3.0e-4)."""


YAMLLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                 re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                 list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """Parse YAML safely (no arbitrary objects), with YAML 1.2 floats."""
    return yaml.load(text, Loader=YAMLLoader)  # noqa: S506 - YAMLLoader is a SafeLoader


def require(condition: bool, key: str, message: str) -> None:
    """Raise ConfigError(key, message) unless `condition`; used by config __post_init__ checks."""
    if not condition:
        raise ConfigError(key, message)


@dataclass(frozen=True)
class DataConfig:
    """Which dataset to read and how to shape it."""

    name: str = "digits"
    root: str | None = None  # data directory; None: $AIGCKIT_DATA, then ~/.cache/aigckit/data
    image_size: int = 32  # images are resized to image_size x image_size
    channels: int | None = None  # imagefolder only: 1 (grey) or 3 (RGB); fixed by the other datasets
    val_fraction: float = 0.1  # share of the training files held out as the validation split
    download: bool = True  # fetch missing standard files when a network is reachable
    tokenizer: str = "char"  # text: 'char', 'bpe' (trained on the training split) or a tokenizer.json path
    vocab_size: int = 1024  # text, bpe: vocabulary size to train
    block_size: int = 128  # text: tokens per training window
    flip: bool = False  # images: flip a random half of each batch left-right (which ones: seed and batch index)
    # DataLoader worker processes preparing training batches; 0 prepares them in the training process, which
    # measured fastest for the in-memory and memory-mapped uint8 sets here (benchmarks/data_pipeline.py)
    num_workers: int = 0

    def __post_init__(self) -> None:
        require(self.image_size >= 4, "image_size", f"must be at least 4, got {self.image_size}")
        require(self.channels in (None, 1, 3), "channels", f"must be 1 or 3, got {self.channels}")
        require(0.0 <= self.val_fraction < 1.0, "val_fraction", "must be in [0, 1)")
        require(self.vocab_size >= 257, "vocab_size", "must be at least 257 (256 byte tokens + merges)")
        require(self.block_size >= 2, "block_size", "must be at least 2")
        require(self.num_workers >= 0, "num_workers", f"must be 0 or more, got {self.num_workers}")


@dataclass(frozen=True)
class TrainConfig:
    """How the Trainer runs: steps, batches, precision, schedules, logging and checkpoints."""

    max_steps: int = 1000
    # stop (with a final checkpoint) once training has taken this long; the LR decay then follows the clock
    # whenever it is further along than the step count
    max_minutes: float | None = None
    batch_size: int = 64  # per process and per micro-batch
    grad_accum_steps: int = 1  # micro-batches summed into one optimizer step
    seed: int = 0
    # auto: bf16 autocast where the hardware runs bf16 natively and measurably faster, fp32 elsewhere
    # (aigckit.precision); bf16 forces autocast (and warns where it is emulated); fp32 turns it off
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    grad_clip: float | None = None  # max global grad norm per optimizer; None: off
    warmup_steps: int = 0  # linear LR warm-up from 0
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"  # after warm-up, decay until max_steps
    min_lr_fraction: float = 0.0  # where cosine/linear decay ends, as a fraction of the base learning rate
    use_ema: bool = True
    ema_decay: float = 0.999
    log_every: int = 25
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3  # most recent checkpoints kept; 0 keeps all
    num_samples: int = 64  # images in each periodic sample grid

    def __post_init__(self) -> None:
        for key in ("max_steps", "batch_size", "grad_accum_steps", "log_every", "sample_every",
                    "checkpoint_every", "num_samples"):
            value = getattr(self, key)
            require(value > 0, key, f"must be positive, got {value}")
        require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        require(0.0 <= self.min_lr_fraction <= 1.0, "min_lr_fraction", "must be in [0, 1]")
        require(self.keep_checkpoints >= 0, "keep_checkpoints", "must be >= 0 (0 keeps all)")
        require(0.0 <= self.ema_decay < 1.0, "ema_decay", f"must be in [0, 1), got {self.ema_decay}")
        require(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be positive or null")
        require(self.max_minutes is None or self.max_minutes > 0, "max_minutes", "must be positive or null")


@dataclass(frozen=True)
class RunConfig:
    """A whole run: the model (a family's config), the data and the training settings."""

    model: Any
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """Turn ["train.lr=2e-4", "data.name=mnist"] into a nested dict; values parse as YAML scalars."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(item, "an override is written key=value, for example train.max_steps=100")
        node = nested
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = parse_yaml(raw) if raw.strip() else None
    return nested


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return f"list of {_type_name(typing.get_args(hint)[0])}"
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a type hint; ints widen to floats, lists become tuples."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
    elif origin is Literal:
        if value in typing.get_args(hint):
            return value
    elif origin is tuple:
        item_hint = typing.get_args(hint)[0]
        if isinstance(value, (list, tuple)):
            return tuple(_coerce(v, item_hint, key) for v in value)
    elif hint is type(None):
        if value is None:
            return None
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(hint, type) and isinstance(value, hint):
        return value
    raise ConfigError(key, f"expected {_type_name(hint)}, got {value!r}")


def build_dataclass(cls: type, values: Mapping[str, Any] | None, prefix: str) -> Any:
    """Build dataclass `cls` from `values`; every problem names its full key, e.g. train.max_steps."""
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls) if f.init]
    unknown = [k for k in values if k not in names]
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f"did you mean {prefix}{close[0]}?" if close else f"known keys: {', '.join(names)}"
        raise ConfigError(f"{prefix}{unknown[0]}", f"unknown key; {hint}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError as error:
        raise ConfigError(f"{prefix}{error.key}", str(error).split(": ", 1)[-1]) from None


def config_from_dict(raw: Mapping[str, Any]) -> RunConfig:
    """Validate a nested dict (a parsed YAML file with overrides applied) into a RunConfig."""
    if not isinstance(raw, Mapping):
        raise ConfigError("", "a config file holds a mapping with the sections model, data and train")
    unknown = [k for k in raw if k not in ("model", "data", "train")]
    if unknown:
        close = difflib.get_close_matches(unknown[0], ["model", "data", "train"], n=1)
        hint = f"did you mean {close[0]}?" if close else "the sections are model, data and train"
        raise ConfigError(unknown[0], f"unknown section; {hint}")
    for section in ("model", "data", "train"):
        if raw.get(section) is not None and not isinstance(raw[section], Mapping):
            raise ConfigError(section, "must be a mapping of keys to values")
    model_raw = dict(raw.get("model") or {})
    if "name" not in model_raw:
        raise ConfigError("model.name", "missing; name a model, e.g. model.name=dcgan (see `aigckit models`)")
    try:
        family = family_for_model(str(model_raw["name"]))
    except Exception as error:  # unknown model name: the registry's message has the suggestion
        raise ConfigError("model.name", str(error)) from None
    preset = model_raw.pop("preset", None)
    if preset is not None:
        if preset not in family.presets:
            raise ConfigError("model.preset", f"unknown preset {preset!r}; known: {', '.join(family.presets)}")
        model_raw = {**family.presets[preset], **model_raw}
    return RunConfig(
        model=build_dataclass(family.config_class, model_raw, "model."),
        data=build_dataclass(DataConfig, raw.get("data"), "data."),
        train=build_dataclass(TrainConfig, raw.get("train"), "train."),
    )


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> RunConfig:
    """Read a YAML config, apply dotted `key=value` overrides and validate everything."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ConfigError("", f"config file {path} {what}; pass a YAML file such as configs/dcgan-digits.yaml")
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError("", f"{path} is not UTF-8 text; pass a YAML file such as configs/dcgan-digits.yaml") from None
    except yaml.YAMLError as error:
        raise ConfigError("", f"{path} is not valid YAML ({error.__class__.__name__}); fix the syntax") from None
    if not isinstance(raw, Mapping):
        raise ConfigError("", f"{path} holds a {type(raw).__name__}, not a mapping; a config file has the sections "
                              f"model, data and train")
    return config_from_dict(_merge(raw, parse_overrides(overrides)))


def to_dict(config: Any) -> Any:
    """A dataclass (nested) as plain dicts and lists, ready for YAML or JSON."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in fields(config)}
    if isinstance(config, tuple):
        return [to_dict(v) for v in config]
    return config
