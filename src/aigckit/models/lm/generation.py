"""Token-by-token generation: greedy, temperature, top-k, top-p (nucleus) and a repetition penalty.

Works for any model whose forward is (tokens, past) -> (logits, past): the GPT's KV cache and the LSTM's
recurrent state both let each new token cost one position.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from .watermark import Watermark

__all__ = ["generate_tokens", "filter_logits", "beam_search"]


def filter_logits(logits: Tensor, *, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set logits outside the top k, or outside the smallest set with probability >= top_p, to -inf."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token when the tokens before it already reach top_p (the most likely one always stays)
        drop_sorted = cumulative - sorted_logits.softmax(-1) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.inference_mode()
def generate_tokens(model: nn.Module, prompt: Tensor, *, max_new_tokens: int, greedy: bool = False,
                    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                    repetition_penalty: float = 1.0, generator: torch.Generator | None = None,
                    watermark: Watermark | None = None) -> Iterator[Tensor]:
    """Yield the next token of every sequence, (B,), max_new_tokens times; prompt: (B, T0) ids, T0 >= 1.

    watermark: add its green-list bias to the logits before choosing (see watermark.py)."""
    block_size = getattr(model.config, "block_size", None) if model.config.name == "gpt" else None
    context = prompt if block_size is None else prompt[:, -block_size:]
    logits, past = model(context)
    seen = prompt.clone()
    for _ in range(max_new_tokens):
        next_logits = logits[:, -1, :].float()
        if repetition_penalty != 1.0:  # CTRL, https://arxiv.org/abs/1909.05858: discourage tokens already used
            scores = next_logits.gather(1, seen)
            scores = torch.where(scores > 0, scores / repetition_penalty, scores * repetition_penalty)
            next_logits = next_logits.scatter(1, seen, scores)
        if watermark is not None:
            next_logits = watermark.bias(next_logits, seen)
        if greedy:
            token = next_logits.argmax(dim=-1)
        else:
            probs = filter_logits(next_logits / max(temperature, 1e-6), top_k=top_k, top_p=top_p).softmax(-1)
            token = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(prompt.device)
        yield token
        seen = torch.cat([seen, token[:, None]], dim=1)
        if block_size is not None and seen.shape[1] > block_size:
            logits, past = model(seen[:, -block_size:])  # the window slid past the positions: recompute
        else:
            logits, past = model(token[:, None], past)


def _reorder(past, order: Tensor):
    """Select cache rows for the surviving beams: our GPT's KVCache or a transformers Cache (in place), or an
    LSTM's (h, c) with the batch second."""
    if hasattr(past, "reorder_cache"):
        past.reorder_cache(order)
        return past
    return tuple(s.index_select(1, order) for s in past)


@torch.inference_mode()
def beam_search(model: nn.Module, prompt: Tensor, *, max_new_tokens: int, num_beams: int = 4,
                length_penalty: float = 1.0) -> Tensor:
    """The continuation (max_new_tokens,) of one prompt (1, T0) with the highest log-probability.

    Keeps the num_beams best partial sequences by summed log-probability; all have the same length here,
    so length_penalty (score / length^penalty, as in GNMT) only matters across prompts of other lengths.
    """
    block_size = model.config.block_size if model.config.name == "gpt" else None
    if block_size is not None and prompt.shape[1] + max_new_tokens > block_size:
        raise ValueError(f"beam search keeps the whole sequence in the cache: prompt + new tokens must fit "
                         f"block_size {block_size}")
    logits, past = model(prompt)
    log_probs = logits[:, -1].float().log_softmax(-1)  # (1, V)
    scores, tokens = log_probs[0].topk(min(num_beams, log_probs.shape[1]))  # the first expansion: distinct tokens
    sequences = tokens[:, None]  # (beams, 1)
    past = _reorder(past, torch.zeros(len(tokens), dtype=torch.long, device=prompt.device))
    for _ in range(max_new_tokens - 1):
        logits, past = model(sequences[:, -1:], past)
        candidates = scores[:, None] + logits[:, -1].float().log_softmax(-1)  # (beams, V)
        scores, flat = candidates.flatten().topk(min(num_beams, candidates.numel()))
        beam, token = flat // candidates.shape[1], flat % candidates.shape[1]
        sequences = torch.cat([sequences[beam], token[:, None]], dim=1)
        past = _reorder(past, beam)
    best = (scores / sequences.shape[1] ** length_penalty).argmax()
    return sequences[best]
