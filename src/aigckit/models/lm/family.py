"""The language-model family: next-token prediction with cross-entropy (a GPT, an LSTM, or a local
`transformers` causal LM), and masked-token prediction for a bidirectional GPT encoder."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...atomic import atomic_write_text
from ...errors import AigcError, CheckpointError
from ...flops import transformer_flops_per_token
from ...family import FAMILIES, Batch, FamilyBase, StepOutput
from .config import PRESETS, LMConfig
from .generation import generate_tokens
from .gpt import GPT
from .hf import TransformersCausalLM
from .lstm import LSTMLanguageModel
from .mlm import fill_masks, mlm_loss

__all__ = ["LMFamily"]


class LMFamily(FamilyBase):
    """Language models over token ids: GPT (decoder-only Transformer, or an MLM encoder), LSTM, transformers."""

    name = "lm"
    config_class = LMConfig
    presets = PRESETS
    models = {
        "gpt": "decoder-only pre-LayerNorm Transformer with a KV cache (GPT-2 layout)",
        "lstm": "embedding -> stacked LSTM -> output layer",
        "hf": "a local transformers causal LM (model.pretrained), fine-tuned fully or with LoRA (peft)",
    }
    modality = "text"
    capabilities = frozenset({"training_flops", "text_samples"})
    sample_options = frozenset({"prompt", "max_new_tokens", "greedy", "temperature", "top_k", "top_p",
                                "repetition_penalty", "watermark", "allowed_tokens"})

    def build(self, config: LMConfig) -> nn.Module:
        """A GPT, an LSTM or a wrapped transformers model for config.vocab_size tokens."""
        if config.name == "hf":
            return TransformersCausalLM(config)
        return GPT(config) if config.name == "gpt" else LSTMLanguageModel(config)

    # ---------------------------------------------------------------- checkpoints
    def save_weights(self, model: nn.Module, directory: Path, name: str) -> None:
        """A LoRA model's adapters in peft's format in `directory/name/` (its frozen base is named in config.json,
        not copied); any other model's weights as `name.safetensors`."""
        if _is_lora(model):
            model.save_adapters(Path(directory) / name)
        else:
            super().save_weights(model, directory, name)

    def load_weights(self, model: nn.Module, directory: Path, name: str) -> None:
        """The inverse of save_weights; a LoRA checkpoint first checks that `model` sits on the base it was
        trained on (the sha256 of the base's weights files), and refuses another one in one line."""
        if not _is_lora(model):
            super().load_weights(model, directory, name)
            return
        manifest = json.loads((Path(directory) / "config.json").read_text(encoding="utf-8"))
        recorded = manifest.get("base_model") or {}
        if recorded.get("sha256") != model.base_model["sha256"]:
            raise CheckpointError(f"the base model at {model.base_model['path']} is not the one this LoRA "
                                  f"checkpoint was trained on ({recorded.get('path')}; the sha256 of its weights "
                                  f"differs); put the original back at model.pretrained or give its place "
                                  f"(aigckit generate RUN --base-model DIR)")
        model.load_adapters(Path(directory) / name)

    def checkpoint_fields(self, model: nn.Module) -> dict[str, Any]:
        """logits_size (what a watermark's green lists are drawn over); for a transformers model also its config
        (a fully fine-tuned one is rebuilt from it, offline) and its base model's path and weights' sha256."""
        fields: dict[str, Any] = {"logits_size": model.logits_size}
        if model.config.name == "hf":
            fields.update(transformers_config=model.transformers_config, base_model=model.base_model)
        return fields

    def build_from_checkpoint(self, config: LMConfig, directory: Path, manifest: dict[str, Any]) -> nn.Module:
        """A fully fine-tuned transformers model from the config its checkpoint saved (no original directory, no
        network); a LoRA model on its base model, found at model.pretrained or where training found it."""
        if config.name != "hf":
            return self.build(config)
        if not config.lora_r:
            if "transformers_config" not in manifest:  # an older checkpoint, without the transformers config
                return self.build(config)
            return TransformersCausalLM(config, transformers_config=manifest["transformers_config"],
                                        base_model=manifest.get("base_model"))
        recorded = manifest.get("base_model") or {}
        for place in (config.pretrained, recorded.get("path")):
            if place and Path(place).expanduser().is_dir():
                return TransformersCausalLM(dataclasses.replace(config, pretrained=str(Path(place).expanduser())))
        raise CheckpointError(f"{directory} holds LoRA adapters for the base model {config.pretrained}, which is "
                              f"not there any more; put it back or give its new place (aigckit generate RUN "
                              f"--base-model DIR)")

    def optimizers(self, model: nn.Module, config: LMConfig) -> dict[str, torch.optim.Optimizer]:
        """Fused AdamW; weight decay on matrices only (not on biases, norms or 1-d parameters), as in nanoGPT."""
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        # the fused kernel updates every tensor in one pass (about 8 % of a small GPT's step on CPU)
        return {"model": torch.optim.AdamW(groups, lr=config.lr, betas=(config.betas[0], config.betas[1]),
                                           fused=True)}

    def training_flops_per_example(self, model: nn.Module) -> float | None:
        """FLOPs of one training window: 6 per matmul weight per token (forward 2, backward 4), plus attention.
        None for transformers models, whose layers are not all nn.Linear."""
        config = model.config
        if config.name == "hf":
            return None
        matmul_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
        matmul_weights += sum(p.numel() for m in model.modules() if isinstance(m, nn.LSTM)
                              for name, p in m.named_parameters() if name.startswith("weight"))
        attention_layers = config.n_layer if config.name == "gpt" else 0
        return config.block_size * transformer_flops_per_token(matmul_weights, attention_layers, config.n_embd,
                                                               config.block_size)

    def training_step(self, model: nn.Module, batch: Batch, step: int,
                      nets: dict[str, nn.Module]) -> Iterator[StepOutput]:
        """Cross-entropy of every next token in the window (mlm: of every masked token)."""
        tokens = batch["tokens"]
        if model.config.objective == "mlm":
            loss = mlm_loss(nets["model"], tokens[:, :-1], model.config)  # the window without its next-token target
            yield StepOutput("model", loss, {"loss": loss.detach()})
            return
        logits, _ = nets["model"](tokens[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
        yield StepOutput("model", loss, {"loss": loss.detach()})

    @torch.no_grad()
    def sample(self, model: nn.Module, n: int, *, labels: Tensor | None = None,
               generator: torch.Generator | None = None, prompt: Tensor | None = None,
               max_new_tokens: int | None = None, **options) -> Tensor:
        """n sequences of token ids (n, T0 + max_new_tokens), from `prompt` (default: token 0)."""
        if model.config.objective == "mlm":
            raise AigcError("a masked-LM encoder fills in masked tokens (aigckit.models.lm.fill_masks); it does "
                            "not generate text: train with model.objective=causal to generate")
        device = next(model.parameters()).device
        prompt = torch.zeros(n, 1, dtype=torch.long, device=device) if prompt is None else prompt.to(device)
        steps = max_new_tokens or model.config.block_size - prompt.shape[1]
        was_training = model.training
        model.eval()
        try:
            new = list(generate_tokens(model, prompt, max_new_tokens=steps, generator=generator, **options))
        finally:
            model.train(was_training)
        return torch.cat([prompt, torch.stack(new, dim=1)], dim=1)

    def write_samples(self, model: nn.Module, run_dir: Path, step: int, generator: torch.Generator) -> Path:
        """samples/step-NNNNNN.txt: a few generated passages (mlm: training text with masks filled in), decoded
        with the run's tokenizer."""
        from ...data.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(Path(run_dir) / "tokenizer.json")
        if model.config.objective == "mlm":
            ids = np.memmap(Path(run_dir) / "data" / "tokens.bin", dtype=np.int32, mode="r")
            tokens = torch.from_numpy(ids[: model.config.block_size].astype("int64"))[None]
            mask = torch.rand(tokens.shape, generator=generator) < model.config.mask_prob
            device = next(model.parameters()).device
            filled = fill_masks(model, tokens.to(device), mask.to(device)).cpu()
            passages = [f"original:\n{tokenizer.decode(tokens[0].tolist())}",
                        f"{int(mask.sum())} tokens masked and filled in:\n{tokenizer.decode(filled[0].tolist())}"]
        else:
            rows = self.sample(model, 4, generator=generator, temperature=0.8, allowed_tokens=tokenizer.vocab_size)
            passages = [tokenizer.decode(row.tolist()) for row in rows]
        path = Path(run_dir) / "samples" / f"step-{step:06d}.txt"
        atomic_write_text(path, "\n\n----------\n\n".join(passages))
        return path


def _is_lora(model: nn.Module) -> bool:
    return model.config.name == "hf" and model.config.lora_r > 0


FAMILIES.register("lm")(LMFamily())
