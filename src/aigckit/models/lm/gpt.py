"""A decoder-only, pre-LayerNorm Transformer (GPT-2's layout), read top to bottom as in nanoGPT.

Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V with a causal mask, through PyTorch's
scaled_dot_product_attention; a KV cache makes incremental decoding cost one position per step.
Positions are learned embeddings or rotary (RoPE, https://arxiv.org/abs/2104.09864); with objective=mlm the
same stack is a bidirectional encoder (no causal mask) over the vocabulary plus one [MASK] token.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import LMConfig

__all__ = ["GPT", "KVCache", "BatchKVCache", "rotary_angles", "apply_rotary"]


class KVCache:
    """Keys and values of the positions so far, for every layer, in buffers of block_size positions allocated
    on first use: appending a step is a copy into the buffer, not a concatenation of the whole history."""

    def __init__(self, config: LMConfig) -> None:
        self.config = config
        self.keys: Tensor | None = None  # (n_layer, B, nh, block_size, hd)
        self.values: Tensor | None = None
        self.length = 0  # positions stored (every layer has the same)

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v (B, nh, T, hd) after the cached positions of `layer`; return all its keys and values."""
        if self.keys is None:
            shape = (self.config.n_layer, *k.shape[:2], self.config.block_size, k.shape[3])
            self.keys, self.values = k.new_empty(shape), v.new_empty(shape)
        end = self.length + k.shape[2]
        self.keys[layer, :, :, self.length:end] = k
        self.values[layer, :, :, self.length:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def reorder_cache(self, order: Tensor) -> None:
        """Keep the batch rows `order` (beam search), in that order."""
        self.keys, self.values = self.keys.index_select(1, order), self.values.index_select(1, order)


class BatchKVCache:
    """Keys and values of several sequences of different lengths decoded together (continuous batching).

    Row i of the buffers holds lengths[i] positions of its sequence; rows 0..n-1 are in use. A forward pass
    over it takes one new token per row (B = n, T = 1) at each row's own position, and attention masks each
    row's keys beyond its length. Rows join from a prefilled single-sequence KVCache (`add`) and leave by
    `remove`, which moves the last row into the freed one. Buffers grow (doubling) up to `max_rows` rows."""

    def __init__(self, config: LMConfig, max_rows: int) -> None:
        self.config = config
        self.max_rows = max_rows
        self.keys: Tensor | None = None  # (n_layer, rows, nh, block_size, hd)
        self.values: Tensor | None = None
        self.lengths: list[int] = []  # positions stored in each row in use
        self.mask: Tensor | None = None  # (n, 1, 1, longest + 1): keys each row's query sees (None: all), per step
        self._slots: Tensor | None = None  # (n * nh,) where this step's keys and values go in a layer's buffer
        self._longest = 0  # keys the step attends to: the longest row's length + 1

    def __len__(self) -> int:
        return len(self.lengths)

    def add(self, cache: KVCache) -> None:
        """Append a row holding the one sequence of `cache` (a prefill of its prompt)."""
        n, length = len(self.lengths), cache.length
        if n == self.max_rows:
            raise ValueError(f"the batch cache holds at most {self.max_rows} rows")
        if self.keys is None or n == self.keys.shape[1]:
            rows = min(self.max_rows, max(1, 2 * n))
            shape = (cache.keys.shape[0], rows, *cache.keys.shape[2:])
            # zeros, not empty: masked keys still enter the matmuls (0 * NaN garbage would be NaN)
            keys, values = cache.keys.new_zeros(shape), cache.values.new_zeros(shape)
            if n:
                keys[:, :n], values[:, :n] = self.keys[:, :n], self.values[:, :n]
            self.keys, self.values = keys, values
        self.keys[:, n, :, :length] = cache.keys[:, 0, :, :length]
        self.values[:, n, :, :length] = cache.values[:, 0, :, :length]
        self.lengths.append(length)

    def remove(self, row: int) -> None:
        """Free `row`: the last row moves into its place (its index becomes `row`)."""
        last = len(self.lengths) - 1
        if row != last:
            length = self.lengths[last]
            self.keys[:, row, :, :length] = self.keys[:, last, :, :length]
            self.values[:, row, :, :length] = self.values[:, last, :, :length]
            self.lengths[row] = length
        self.lengths.pop()

    def begin_step(self, device: torch.device) -> Tensor:
        """(n,) the position of each row's next token; sets where this step's keys go and the key mask."""
        n, (_, _, nh, block, _) = len(self.lengths), self.keys.shape
        positions = torch.tensor(self.lengths, device=device)
        heads = torch.arange(n * nh, device=device).view(n, nh)  # row * nh + head
        self._slots = (heads * block + positions[:, None]).flatten()  # (n * nh,) into a layer's (rows * nh * block)
        longest = max(self.lengths) + 1
        # rows of one length need no mask (and then attend exactly as a single sequence does)
        same = min(self.lengths) + 1 == longest
        self.mask = None if same else (torch.arange(longest, device=device) <= positions[:, None])[:, None, None, :]
        self._longest = longest
        return positions

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store one new position per row, k, v (n, nh, 1, hd), at each row's length; return the keys and
        values of all rows up to the longest (those beyond a row's length are masked by self.mask)."""
        n, hd = len(self.lengths), k.shape[-1]
        self.keys[layer].view(-1, hd).index_copy_(0, self._slots, k.reshape(-1, hd))
        self.values[layer].view(-1, hd).index_copy_(0, self._slots, v.reshape(-1, hd))
        return self.keys[layer, :n, :, :self._longest], self.values[layer, :n, :, :self._longest]

    def advance(self) -> None:
        """Every row holds one more position (called after the forward pass)."""
        self.lengths = [length + 1 for length in self.lengths]


def rotary_angles(positions: Tensor, head_dim: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """cos and sin of position * base^(-2i / head_dim) for each of the head_dim / 2 pairs: (T, head_dim / 2)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.float()[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate each pair (x_i, x_{i + d/2}) of x (B, nh, T, d) by its position's angle, so that q . k depends
    only on the distance between the two positions."""
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention: causal (a decoder) or over the whole sequence (the masked-LM encoder)."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)
        self.causal = config.objective == "causal"

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0,
                rotary: tuple[Tensor, Tensor] | None = None) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # (B, T, C) each
        q, k, v = (z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for z in (q, k, v))  # (B, nh, T, hd)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        earlier = cache.length if cache is not None else 0
        if cache is not None:
            k, v = cache.append(layer, k, v)
        dropout = self.dropout if self.training else 0.0
        if not self.causal or (earlier and T == 1):
            # the masked-LM encoder, or one new query: every query attends to every key
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        elif not earlier:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        else:  # the T new queries see every cached key: causal only within the new positions
            mask = torch.ones(T, earlier + T, dtype=torch.bool, device=x.device).tril(earlier)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = SelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0,
                rotary: tuple[Tensor, Tensor] | None = None) -> Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer, rotary)  # pre-LayerNorm residual blocks
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """tokens (B, T) -> logits (B, T, vocab); positions up to block_size."""

    slides_window = True  # generation past block_size recomputes the last block_size positions

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        # mlm: one extra token id, vocab_size, is [MASK]
        n_tokens = config.vocab_size + (config.objective == "mlm")
        self.wte = nn.Embedding(n_tokens, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd) if config.positions == "learned" else None
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, n_tokens, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight  # https://arxiv.org/abs/1608.05859
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2: scale residual projections by 1/sqrt(2 n_layer)
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @property
    def context_size(self) -> int:
        """The most positions one forward pass sees."""
        return self.config.block_size

    @property
    def logits_size(self) -> int:
        """Width of the logits (the vocabulary, plus [MASK] for the masked-LM encoder)."""
        return self.lm_head.out_features

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens: Tensor, past: KVCache | BatchKVCache | None = None,
                use_cache: bool = False) -> tuple[Tensor, KVCache | BatchKVCache | None]:
        """tokens: (B, T) ids; past: the cache of earlier positions, extended in place. Returns logits
        (B, T, vocab) and the cache: `past`, a new one when use_cache (generation asks for it), else None, so that
        a validation or training forward never allocates block_size-long buffers.

        With a BatchKVCache of n rows, tokens is (n, 1): the next token of each row, at the row's own position."""
        if isinstance(past, BatchKVCache):
            return self._forward_rows(tokens, past), past
        B, T = tokens.shape
        start = past.length if past is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} tokens exceeds block_size {self.config.block_size}")
        if self.config.objective == "mlm" and (past is not None or use_cache):
            raise ValueError("a masked-LM encoder sees the whole sequence at once; it has no KV cache")
        if past is None and use_cache:
            past = KVCache(self.config)
        positions = torch.arange(start, start + T, device=tokens.device)
        x = self.wte(tokens)  # (B, T, C)
        rotary = None
        if self.wpe is not None:
            x = x + self.wpe(positions)
        else:
            rotary = rotary_angles(positions, self.config.n_embd // self.config.n_head)
        x = self.drop(x)
        for i, block in enumerate(self.h):
            x = block(x, past, i, rotary)
        if past is not None:
            past.length += T
        return self.lm_head(self.ln_f(x)), past

    def _forward_rows(self, tokens: Tensor, past: BatchKVCache) -> Tensor:
        """One decoding step of every row of a BatchKVCache: tokens (n, 1) -> logits (n, 1, vocab).

        forward's arithmetic for inference on rows (n, C), the layers called as functions without dropout: at
        small batches a step's time goes mostly to per-call overhead (measured 30 % faster at batch 1)."""
        if self.training:
            raise ValueError("the batch cache decodes for inference only; call model.eval() first")
        n, C, nh = tokens.shape[0], self.config.n_embd, self.config.n_head
        hd = C // nh
        if tokens.shape != (len(past), 1):
            raise ValueError(f"a batch cache of {len(past)} rows takes tokens of shape ({len(past)}, 1), "
                             f"got {tuple(tokens.shape)}")
        if max(past.lengths) >= self.config.block_size:
            raise ValueError(f"a row of the batch cache is full (block_size {self.config.block_size})")
        positions = past.begin_step(tokens.device)  # (n,) each row's own position
        x = F.embedding(tokens[:, 0], self.wte.weight)  # (n, C)
        rotary = None
        if self.wpe is not None:
            x = x + F.embedding(positions, self.wpe.weight)
        else:
            cos, sin = rotary_angles(positions, hd)  # (n, hd / 2)
            rotary = cos[:, None, None, :], sin[:, None, None, :]  # broadcast over (n, nh, 1, hd / 2)
        for layer, block in enumerate(self.h):
            attn, mlp = block.attn, block.mlp
            qkv = F.linear(_norm(x, block.ln_1), attn.c_attn.weight, attn.c_attn.bias)  # (n, 3C)
            q, k, v = qkv.view(n, 3, nh, 1, hd).unbind(1)  # (n, nh, 1, hd) each
            if rotary is not None:
                q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
            k, v = past.append(layer, k, v)  # (n, nh, longest, hd)
            # each row's query sees its own keys only: those beyond its length are masked
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=past.mask).reshape(n, C)  # heads side by side
            x = x + F.linear(y, attn.c_proj.weight, attn.c_proj.bias)
            h = F.gelu(F.linear(_norm(x, block.ln_2), mlp.c_fc.weight, mlp.c_fc.bias), approximate="tanh")
            x = x + F.linear(h, mlp.c_proj.weight, mlp.c_proj.bias)
        past.advance()
        return F.linear(_norm(x, self.ln_f), self.lm_head.weight)[:, None]  # (n, 1, vocab)


def _norm(x: Tensor, norm: nn.LayerNorm) -> Tensor:
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
