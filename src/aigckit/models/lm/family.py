"""The language-model family: next-token prediction with cross-entropy, for a GPT or an LSTM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..base import FAMILIES, Batch, StepOutput
from .config import PRESETS, LMConfig
from .generation import generate_tokens
from .gpt import GPT
from .lstm import LSTMLanguageModel

__all__ = ["LMFamily"]


class LMFamily:
    """Causal language models over token ids: a GPT (decoder-only Transformer) and an LSTM."""

    name = "lm"
    config_class = LMConfig
    presets = PRESETS
    models = {
        "gpt": "decoder-only pre-LayerNorm Transformer with a KV cache (GPT-2 layout)",
        "lstm": "embedding -> stacked LSTM -> output layer",
    }

    def build(self, config: LMConfig) -> nn.Module:
        """A GPT or an LSTM for config.vocab_size tokens."""
        return GPT(config) if config.name == "gpt" else LSTMLanguageModel(config)

    def optimizers(self, model: nn.Module, config: LMConfig) -> dict[str, torch.optim.Optimizer]:
        """AdamW; weight decay on matrices only (not on biases, norms or 1-d parameters), as in nanoGPT."""
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return {"model": torch.optim.AdamW(groups, lr=config.lr, betas=(config.betas[0], config.betas[1]))}

    def training_step(self, model: nn.Module, batch: Batch, step: int) -> Iterator[StepOutput]:
        """Cross-entropy of every next token in the window."""
        tokens = batch["tokens"]
        logits, _ = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
        yield StepOutput("model", loss, {"loss": loss.detach()})

    @torch.no_grad()
    def sample(self, model: nn.Module, n: int, *, labels: Tensor | None = None,
               generator: torch.Generator | None = None, prompt: Tensor | None = None,
               max_new_tokens: int | None = None, **options) -> Tensor:
        """n sequences of token ids (n, T0 + max_new_tokens), from `prompt` (default: token 0)."""
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
        """samples/step-NNNNNN.txt: a few generated passages, decoded with the run's tokenizer."""
        from ...data.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(Path(run_dir) / "tokenizer.json")
        tokens = self.sample(model, 4, generator=generator, temperature=0.8)
        path = Path(run_dir) / "samples" / f"step-{step:06d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n\n----------\n\n".join(tokenizer.decode(row.tolist()) for row in tokens), encoding="utf-8")
        return path


FAMILIES.register("lm")(LMFamily())
