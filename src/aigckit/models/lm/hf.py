"""Hugging Face interop: GPT-2 checkpoints as our GPT, and any local `transformers` causal LM behind our
generation code and Trainer (fully fine-tuned, or with LoRA through peft).

Weights are read from *.safetensors only: aigckit never unpickles a file (transformers saves safetensors
by default).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ...errors import AigcError, CheckpointError
from ...hub import resolve_pretrained
from .config import LMConfig
from .gpt import GPT

__all__ = ["is_transformers_dir", "gpt_from_transformers", "TransformersCausalLM", "weights_sha256"]

_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def is_transformers_dir(path: str | Path) -> bool:
    """A folder saved by `transformers` (config.json with a model_type), not an aigckit checkpoint."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        fields = json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False  # not a transformers directory; a damaged aigckit checkpoint says so when it is read
    return isinstance(fields, dict) and "model_type" in fields and "family" not in fields


def _read_safetensors(directory: Path) -> dict[str, Tensor]:
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise AigcError(f"{directory} holds no *.safetensors weights; aigckit never unpickles files: re-save the "
                        f"model with `model.save_pretrained(dir)` (safetensors is the default)")
    weights: dict[str, Tensor] = {}
    for file in files:
        weights.update(load_file(str(file)))
    return weights


def gpt_from_transformers(directory: str | Path) -> GPT:
    """Our GPT with the weights of a `transformers` GPT-2 directory (same logits; see tests/models/lm/test_hf.py)."""
    directory = resolve_pretrained(str(directory))
    hf = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    if hf.get("model_type") != "gpt2":
        raise AigcError(f"{directory} holds a {hf.get('model_type')!r} model; only GPT-2 converts into our gpt "
                        f"(use model.name=hf to run or fine-tune other causal LMs)")
    unsupported = {"activation_function": hf.get("activation_function") not in ("gelu_new", "gelu_pytorch_tanh"),
                   "layer_norm_epsilon": hf.get("layer_norm_epsilon", 1e-5) != 1e-5,
                   "scale_attn_by_inverse_layer_idx": hf.get("scale_attn_by_inverse_layer_idx", False)}
    if any(unsupported.values()):
        raise AigcError(f"{directory}: GPT-2 variant with {[k for k, v in unsupported.items() if v]} is not "
                        f"supported by our gpt; load it with model.name=hf instead")
    tied = hf.get("tie_word_embeddings", True)
    config = LMConfig(name="gpt", vocab_size=hf["vocab_size"], block_size=hf["n_positions"], n_layer=hf["n_layer"],
                      n_head=hf["n_head"], n_embd=hf["n_embd"], dropout=0.0, bias=True, tie_weights=tied)
    state = {}
    for key, value in _read_safetensors(directory).items():
        key = key.removeprefix("transformer.")
        if key.endswith(("attn.bias", "attn.masked_bias")) and value.dim() != 1:
            continue  # old GPT-2 files store the causal mask as a buffer
        state[key] = value.t() if key.endswith(_CONV1D) else value  # Conv1D keeps (in, out); Linear (out, in)
    if tied:
        state["lm_head.weight"] = state["wte.weight"]
    model = GPT(config)
    model.load_state_dict(state, strict=True)
    return model.eval()


@contextmanager
def _transformers_errors(source: object) -> Iterator[None]:
    """Build a transformers model without its progress bars; its errors become one line for the user."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    except (ValueError, OSError, KeyError) as error:  # an unknown or non-causal architecture, missing files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AigcError(f"{source} cannot be loaded as a transformers causal language model ({first_line})") \
            from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def weights_sha256(directory: Path) -> dict[str, str]:
    """sha256 of each *.safetensors file of a model directory (its weights), by file name."""
    digests = {}
    for file in sorted(Path(directory).glob("*.safetensors")):
        digest = hashlib.sha256()
        with open(file, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        digests[file.name] = digest.hexdigest()
    return digests


class TransformersCausalLM(nn.Module):
    """A `transformers` causal LM behind our interface: tokens (B, T), past -> logits (B, T, vocab), past.

    Built from `config.pretrained` (a local directory or a Hub id), or, for a run's checkpoint of a fully
    fine-tuned model, from the transformers config saved in the checkpoint (`transformers_config`): the
    checkpoint's weights then replace the untrained ones, so the run needs neither the original directory nor a
    network. A LoRA model always loads its frozen base from `config.pretrained`; `base_model` names that base
    (path and the sha256 of its weights files) so that a checkpoint can refuse another one.
    """

    slides_window = False  # positions beyond the model's context are an error, not a sliding window

    def __init__(self, config: LMConfig, *, transformers_config: dict[str, Any] | None = None,
                 base_model: dict[str, Any] | None = None) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModelForCausalLM

        self.config = config
        if transformers_config is None:
            directory = resolve_pretrained(config.pretrained)
            self.base_model = {"path": str(directory), "sha256": weights_sha256(directory)}
            with _transformers_errors(directory):
                self.hf = AutoModelForCausalLM.from_pretrained(directory, use_safetensors=True, dtype=torch.float32)
        else:
            self.base_model = base_model
            with _transformers_errors("the transformers config saved in the checkpoint"):
                hf_config = AutoConfig.for_model(**transformers_config)
                self.hf = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
        # transformers 5 renamed the cache argument (past_key_values -> cache): a library version, not a family
        parameters = inspect.signature(type(self.hf).forward).parameters
        self._cache_arg = "cache" if "cache" in parameters else "past_key_values"
        model_vocab = self.logits_size
        if config.vocab_size is not None and config.vocab_size > model_vocab:
            raise AigcError(f"the tokenizer has {config.vocab_size} tokens, the model only {model_vocab}: set "
                            f"data.tokenizer to the model's own directory ({config.pretrained})")
        hf_config = self.hf.config
        self.context_size = getattr(hf_config, "n_positions", None) or getattr(hf_config, "max_position_embeddings",
                                                                                None)
        self.transformers_config = json.loads(hf_config.to_json_string())
        if config.lora_r:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                              target_modules=list(config.lora_targets) or None, task_type="CAUSAL_LM")
            self.hf = get_peft_model(self.hf, lora)  # freezes the base weights; only the adapters train

    @property
    def logits_size(self) -> int:
        """Width of the logits: the model's own vocabulary, which may be padded beyond the tokenizer's."""
        return self.hf.get_output_embeddings().weight.shape[0]

    def forward(self, tokens: Tensor, past=None, use_cache: bool = False) -> tuple[Tensor, object]:  # noqa: ANN001
        """Logits of every position and the model's own key/value cache (a transformers Cache; None unless
        continuing from `past` or asked to with use_cache)."""
        keep = use_cache or past is not None
        out = self.hf(input_ids=tokens, use_cache=keep, **{self._cache_arg: past})
        return out.logits, getattr(out, self._cache_arg) if keep else None

    # ---------------------------------------------------------------- LoRA adapters in peft's format
    def save_adapters(self, folder: Path) -> None:
        """adapter_config.json + adapter_model.safetensors: `peft.PeftModel.from_pretrained(base, folder)` loads
        them. The frozen base is not copied."""
        from peft import get_peft_model_state_dict

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = get_peft_model_state_dict(self.hf, save_embedding_layers=False)
        save_file({k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()},
                  str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
        lora = copy.copy(self.hf.peft_config["default"])
        lora.inference_mode = True
        lora.base_model_name_or_path = self.base_model["path"]
        lora.save_pretrained(str(folder))

    def load_adapters(self, folder: Path) -> None:
        """Load adapters written by save_adapters; exactly this model's adapter tensors, or CheckpointError."""
        from peft import get_peft_model_state_dict, set_peft_model_state_dict

        path = Path(folder) / "adapter_model.safetensors"
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise CheckpointError(f"{path} cannot be read as safetensors ({error}); use an earlier checkpoint") \
                from None
        expected = set(get_peft_model_state_dict(self.hf, save_embedding_layers=False))
        if set(tensors) != expected:
            raise CheckpointError(f"{path} does not fit the model (missing {sorted(expected - set(tensors))[:3]}, "
                                  f"unexpected {sorted(set(tensors) - expected)[:3]}); the checkpoint belongs to "
                                  f"another LoRA configuration")
        set_peft_model_state_dict(self.hf, tensors)

