"""Hugging Face interop: GPT-2 checkpoints as our GPT, and any local `transformers` causal LM behind our
generation code and Trainer (fully fine-tuned, or with LoRA through peft).

Weights are read from *.safetensors only: aigckit never unpickles a file (transformers saves safetensors
by default).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from ...errors import AigcError
from ...hub import resolve_pretrained
from .config import LMConfig
from .gpt import GPT

__all__ = ["is_transformers_dir", "gpt_from_transformers", "TransformersCausalLM"]

_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def is_transformers_dir(path: str | Path) -> bool:
    """A folder saved by `transformers` (config.json with a model_type), not an aigckit checkpoint."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    fields = json.loads(config.read_text(encoding="utf-8"))
    return "model_type" in fields and "family" not in fields


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


class TransformersCausalLM(nn.Module):
    """A `transformers` causal LM behind our interface: tokens (B, T), past -> logits (B, T, vocab), past."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM

        self.config = config
        directory = resolve_pretrained(config.pretrained)
        self.hf = AutoModelForCausalLM.from_pretrained(directory, use_safetensors=True, dtype=torch.float32)
        model_vocab = self.hf.get_output_embeddings().weight.shape[0]
        if config.vocab_size is not None and config.vocab_size > model_vocab:
            raise AigcError(f"the tokenizer has {config.vocab_size} tokens, the model only {model_vocab}: set "
                            f"data.tokenizer to the model's own directory ({directory})")
        if config.lora_r:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                              target_modules=list(config.lora_targets) or None, task_type="CAUSAL_LM")
            self.hf = get_peft_model(self.hf, lora)  # freezes the base weights; only the adapters train

    def forward(self, tokens: Tensor, past=None) -> tuple[Tensor, object]:  # noqa: ANN001 - a transformers Cache
        """Logits of every position and the model's own key/value cache."""
        out = self.hf(input_ids=tokens, past_key_values=past, use_cache=not self.training)
        return out.logits, out.past_key_values
