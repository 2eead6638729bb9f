"""Token-by-token generation: greedy, temperature, top-k, top-p (nucleus) and a repetition penalty.

Works for any model whose forward is (tokens, past, use_cache) -> (logits, past) and that says how much context
it takes (`context_size`, None for any) and whether generation may slide its window (`slides_window`): the
GPT's KV cache, a transformers Cache and the LSTM's recurrent state all let each new token cost one position.
Only generation asks for a cache (use_cache=True); any other forward pass allocates none.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ...errors import AigcError
from .watermark import Watermark

__all__ = ["generate_tokens", "choose_tokens", "filter_logits", "beam_search", "check_generation_options",
           "check_context"]


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


def check_generation_options(*, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                             top_p: float | None = None, repetition_penalty: float = 1.0,
                             num_beams: int = 1) -> None:
    """Refuse, in one line (AigcError), a generation option no sampler can serve."""
    problems = [
        (max_new_tokens < 1, f"max_new_tokens must be at least 1, got {max_new_tokens}"),
        (not (math.isfinite(temperature) and temperature > 0),
         f"temperature must be a positive number, got {temperature} (for the most likely token use greedy decoding)"),
        (top_k is not None and top_k < 1, f"top_k must be at least 1, got {top_k}"),
        (top_p is not None and not 0 < top_p <= 1, f"top_p must be in (0, 1], got {top_p}"),
        (not (math.isfinite(repetition_penalty) and repetition_penalty > 0),
         f"repetition_penalty must be a positive number (1: off, > 1 discourages repeats), got {repetition_penalty}"),
        (num_beams < 1, f"num_beams must be at least 1, got {num_beams}"),
    ]
    for failed, message in problems:
        if failed:
            raise AigcError(message)


def check_context(model: nn.Module, prompt_length: int, max_new_tokens: int, *, whole_sequence: bool = False) -> None:
    """Refuse a prompt longer than the model's context, and prompt + new tokens beyond it where the model cannot
    slide its window (a transformers model, or beam search: `whole_sequence`)."""
    limit = model.context_size
    if limit is None:
        return
    if prompt_length > limit:
        raise AigcError(f"the prompt is {prompt_length} tokens, longer than the model's context of {limit} "
                        f"tokens; shorten it")
    if (whole_sequence or not model.slides_window) and prompt_length + max_new_tokens > limit:
        why = "beam search keeps the whole sequence" if whole_sequence else "this model cannot slide its window"
        raise AigcError(f"the prompt ({prompt_length} tokens) and {max_new_tokens} new tokens exceed the model's "
                        f"context of {limit} tokens ({why}); ask for at most {limit - prompt_length} new tokens")


@torch.inference_mode()
def generate_tokens(model: nn.Module, prompt: Tensor, *, max_new_tokens: int, greedy: bool = False,
                    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                    repetition_penalty: float = 1.0, generator: torch.Generator | None = None,
                    watermark: Watermark | None = None, allowed_tokens: int | None = None,
                    autocast_dtype: torch.dtype | None = None) -> Iterator[Tensor]:
    """Yield the next token of every sequence, (B,), max_new_tokens times; prompt: (B, T0) ids, T0 >= 1.

    watermark: add its green-list bias to the logits before choosing (see watermark.py).
    allowed_tokens: only ids below it are chosen (a model whose embedding is padded beyond its tokenizer).
    autocast_dtype: run the model's forward passes under autocast in this dtype (bf16); None: as it is."""
    check_generation_options(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                             repetition_penalty=repetition_penalty)
    check_context(model, prompt.shape[1], max_new_tokens)
    block_size = model.context_size if model.slides_window else None
    model = _in_precision(model, autocast_dtype, prompt.device)
    logits, past = model(prompt, use_cache=True)
    seen = prompt.clone()
    for _ in range(max_new_tokens):
        token = choose_tokens(logits[:, -1, :], seen, greedy=greedy, temperature=temperature, top_k=top_k,
                              top_p=top_p, repetition_penalty=repetition_penalty, generator=generator,
                              watermark=watermark, allowed_tokens=allowed_tokens)
        yield token
        seen = torch.cat([seen, token[:, None]], dim=1)
        if block_size is not None and seen.shape[1] > block_size:
            logits, past = model(seen[:, -block_size:], use_cache=True)  # the window slid past: recompute
        else:
            logits, past = model(token[:, None], past)


def choose_tokens(logits: Tensor, seen: Tensor | None, *, greedy: bool = False, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
                  generator: torch.Generator | None = None, watermark: Watermark | None = None,
                  allowed_tokens: int | None = None) -> Tensor:
    """The next token (B,) of each sequence from its logits (B, V); seen: (B, T) the ids so far (prompt and
    tokens chosen), needed only by repetition_penalty and watermark. One step of generate_tokens (see there for
    the options)."""
    # float64: a tiny temperature or top_p (1e-100) scales logits far beyond float32's range; in float64 they
    # still give the limit (the most likely tokens) instead of inf - inf = NaN
    next_logits = logits.double()
    if repetition_penalty != 1.0:  # CTRL, https://arxiv.org/abs/1909.05858: discourage tokens already used
        scores = next_logits.gather(1, seen)
        scores = torch.where(scores > 0, scores / repetition_penalty, scores * repetition_penalty)
        next_logits = next_logits.scatter(1, seen, scores)
    next_logits = _allowed(next_logits, allowed_tokens)
    if watermark is not None:
        next_logits = watermark.bias(next_logits, seen)
    if greedy:
        return next_logits.argmax(dim=-1)
    probs = filter_logits(next_logits / temperature, top_k=top_k, top_p=top_p).softmax(-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)


def _in_precision(model: nn.Module, autocast_dtype: torch.dtype | None, device: torch.device):
    """`model`'s forward, under autocast in autocast_dtype when one is given (entered per call: a generator must not
    leave autocast switched on in its caller between yields)."""
    if autocast_dtype is None:
        return model

    def forward(*args, **kwargs):
        with torch.autocast(device.type, dtype=autocast_dtype):
            return model(*args, **kwargs)

    return forward


def _allowed(logits: Tensor, allowed_tokens: int | None) -> Tensor:
    """logits (B, V) with the ids from allowed_tokens on set to -inf."""
    if allowed_tokens is None or allowed_tokens >= logits.shape[-1]:
        return logits
    return logits.index_fill(-1, torch.arange(allowed_tokens, logits.shape[-1], device=logits.device),
                             float("-inf"))


def _reorder(past, order: Tensor):
    """Select cache rows for the surviving beams: our GPT's KVCache or a transformers Cache (in place), or an
    LSTM's (h, c) with the batch second."""
    if hasattr(past, "reorder_cache"):
        past.reorder_cache(order)
        return past
    return tuple(s.index_select(1, order) for s in past)


@torch.inference_mode()
def beam_search(model: nn.Module, prompt: Tensor, *, max_new_tokens: int, num_beams: int = 4,
                length_penalty: float = 1.0, allowed_tokens: int | None = None,
                autocast_dtype: torch.dtype | None = None) -> Tensor:
    """The continuation (max_new_tokens,) of one prompt (1, T0) with the highest log-probability.

    Keeps the num_beams best partial sequences by summed log-probability; all have the same length here,
    so length_penalty (score / length^penalty, as in GNMT) only matters across prompts of other lengths.
    allowed_tokens, autocast_dtype: see generate_tokens.
    """
    check_generation_options(max_new_tokens=max_new_tokens, num_beams=num_beams)
    check_context(model, prompt.shape[1], max_new_tokens, whole_sequence=True)
    model = _in_precision(model, autocast_dtype, prompt.device)
    logits, past = model(prompt, use_cache=True)
    log_probs = _allowed(logits[:, -1].float(), allowed_tokens).log_softmax(-1)  # (1, V)
    scores, tokens = log_probs[0].topk(min(num_beams, log_probs.shape[1]))  # the first expansion: distinct tokens
    sequences = tokens[:, None]  # (beams, 1)
    past = _reorder(past, torch.zeros(len(tokens), dtype=torch.long, device=prompt.device))
    for _ in range(max_new_tokens - 1):
        logits, past = model(sequences[:, -1:], past)
        candidates = scores[:, None] + _allowed(logits[:, -1].float(), allowed_tokens).log_softmax(-1)  # (beams, V)
        scores, flat = candidates.flatten().topk(min(num_beams, candidates.numel()))
        beam, token = flat // candidates.shape[1], flat % candidates.shape[1]
        sequences = torch.cat([sequences[beam], token[:, None]], dim=1)
        past = _reorder(past, beam)
    best = (scores / sequences.shape[1] ** length_penalty).argmax()
    return sequences[best]
