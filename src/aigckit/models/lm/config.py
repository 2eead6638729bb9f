"""Language-model hyper-parameters; saved as config.json beside the weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ...config import require

__all__ = ["LMConfig", "PRESETS"]


@dataclass(frozen=True)
class LMConfig:
    """A GPT (decoder-only Transformer) or an LSTM over token ids; vocab_size and block_size come from the data."""

    name: Literal["gpt", "lstm", "hf"] = "gpt"  # hf: a local `transformers` causal LM (see `pretrained`)
    vocab_size: int | None = None
    block_size: int | None = None  # the longest context the model is trained on
    n_layer: int = 4
    n_head: int = 4  # gpt
    n_embd: int = 128  # embedding width (gpt) / input embedding width (lstm)
    hidden_size: int = 256  # lstm: hidden state width
    dropout: float = 0.0
    bias: bool = True  # gpt: biases in linear layers and layer norms
    tie_weights: bool = True  # output layer shares the token embedding (lstm: needs hidden_size == n_embd)
    positions: Literal["learned", "rotary"] = "learned"  # gpt: learned position embeddings or rotary (RoPE)
    objective: Literal["causal", "mlm"] = "causal"  # gpt: mlm trains a bidirectional encoder on masked tokens
    mask_prob: float = 0.15  # mlm: fraction of positions to predict (80 % masked, 10 % random, 10 % kept)
    pretrained: str | None = None  # hf: a local model directory or a Hugging Face Hub id (downloaded)
    lora_r: int = 0  # hf: LoRA rank through peft; 0 fine-tunes every weight
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ()  # hf: module names LoRA adapts; empty: peft's default for the model
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, ...] = (0.9, 0.99)

    def __post_init__(self) -> None:
        for key in ("n_layer", "n_head", "n_embd", "hidden_size"):
            require(getattr(self, key) > 0, key, "must be positive")
        require(self.name != "gpt" or self.n_embd % self.n_head == 0, "n_embd",
                f"must be divisible by n_head ({self.n_head})")
        require(not (self.name == "lstm" and self.tie_weights and self.hidden_size != self.n_embd), "tie_weights",
                "an LSTM can tie its output layer to the embedding only when hidden_size == n_embd; "
                "set model.tie_weights=false or make them equal")
        require(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")
        require(self.lr > 0, "lr", "must be positive")
        require(len(self.betas) == 2, "betas", "two numbers")
        require(self.name != "hf" or bool(self.pretrained), "pretrained",
                "the hf model needs a local transformers model directory (or a Hub id) in model.pretrained")
        require(self.objective == "causal" or self.name == "gpt", "objective", "mlm needs model.name=gpt")
        require(0 < self.mask_prob < 1, "mask_prob", "must be in (0, 1)")
        require(self.lora_r >= 0, "lora_r", "must be >= 0 (0: full fine-tuning)")


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 32, "hidden_size": 32},
    "small": {"n_layer": 4, "n_head": 4, "n_embd": 128, "hidden_size": 256, "tie_weights": False},
    "base": {"n_layer": 6, "n_head": 6, "n_embd": 384, "hidden_size": 512, "tie_weights": False},
}
