"""An LSTM language model: embedding -> stacked LSTM -> output layer.

Each layer updates its cell and hidden state from the previous step and the current input (the gated
form of h_t = sigma(W_h h_{t-1} + W_x x_t + b_h)); the output y_t = softmax(W_y h_t + b_y) is trained
with cross-entropy on the next token.
"""

from __future__ import annotations

from torch import Tensor, nn

from .config import LMConfig

__all__ = ["LSTMLanguageModel"]


class LSTMLanguageModel(nn.Module):
    """tokens (B, T) -> logits (B, T, vocab); the recurrent state plays the role of the KV cache."""

    context_size = None  # the recurrent state carries any length of context
    slides_window = False

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        self.lstm = nn.LSTM(config.n_embd, config.hidden_size, num_layers=config.n_layer, batch_first=True,
                            dropout=config.dropout if config.n_layer > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        if config.tie_weights:
            self.head.weight = self.embed.weight

    @property
    def logits_size(self) -> int:
        """Width of the logits: the vocabulary."""
        return self.head.out_features

    def forward(self, tokens: Tensor, past: tuple[Tensor, Tensor] | None = None,
                use_cache: bool = False) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """tokens: (B, T); past: (h, c) from earlier positions. Returns logits (B, T, vocab) and (h, c) when
        continuing from `past` or asked to (use_cache), else None."""
        out, state = self.lstm(self.drop(self.embed(tokens)), past)  # (B, T, hidden)
        return self.head(self.drop(out)), state if use_cache or past is not None else None
