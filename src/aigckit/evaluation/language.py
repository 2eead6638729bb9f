"""`evaluate_language_model`: validation loss, perplexity, bits per character and generated-text diversity."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import atomic_write_text
from ..data.text import held_out_text
from ..errors import DataError
from ..pipelines import TextPipeline
from .metrics.text import distinct_n, repetition_rate, self_bleu

__all__ = ["evaluate_language_model", "validation_loss"]


@torch.no_grad()
def evaluate_language_model(run_dir: Path, pipeline: TextPipeline, data_config, *, n: int = 20,
                            max_new_tokens: int = 200, max_eval_tokens: int = 200_000, seed: int = 0) -> dict[str, Any]:
    """Metrics of a language-model run on its validation text; writes run_dir/eval/metrics.json.

    The validation text is read from the corpus on disk and tokenized with the run's own tokenizer; when the
    corpus no longer hashes as it did at training, the result's "corpus_warning" says so (also on stderr)."""
    started = time.perf_counter()
    model = pipeline.model.eval()
    device = next(model.parameters()).device
    held_out = held_out_text(run_dir, data_config)
    if held_out.warning:
        print(f"warning: {held_out.warning}", file=sys.stderr)
    val_ids = np.asarray(pipeline.tokenizer.encode(held_out.text), dtype=np.int64)
    if len(val_ids) < 2:
        raise DataError(f"the validation text has {len(val_ids)} token(s); raise data.val_fraction to evaluate")
    facts = {"run": str(run_dir), "checkpoint": str(pipeline.checkpoint), "family": "lm", "model": model.config.name,
             "dataset": data_config.name, "split": "val", "tokenizer": "the run's tokenizer.json",
             "corpus_warning": held_out.warning}
    if model.config.objective == "mlm":
        result = {**facts, "objective": "mlm", **masked_token_metrics(model, val_ids, max_eval_tokens, seed)}
        return _write(run_dir, result, started)
    loss, total_tokens = validation_loss(model, val_ids, max_eval_tokens)
    characters = len(pipeline.tokenizer.decode(val_ids[1:total_tokens + 1].tolist()))

    prompts = torch.zeros(n, 1, dtype=torch.long, device=device)
    samples = pipeline_samples(pipeline, prompts, max_new_tokens, seed)
    result = {
        **facts, "n_eval_tokens": total_tokens,
        "val_loss": loss, "perplexity": math.exp(loss), "bits_per_char": loss * total_tokens / characters / math.log(2),
        "n_samples": n, "sample_tokens": max_new_tokens, "sampling": {"temperature": 1.0, "seed": seed},
        "distinct_1": distinct_n(samples, 1), "distinct_2": distinct_n(samples, 2), "distinct_3": distinct_n(samples, 3),
        "self_bleu": self_bleu(samples), "repetition_rate": repetition_rate(samples, 4),
    }
    return _write(run_dir, result, started)


def _write(run_dir: Path, result: dict[str, Any], started: float) -> dict[str, Any]:
    result["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(run_dir) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result


@torch.no_grad()
def validation_loss(model: torch.nn.Module, ids, max_tokens: int = 200_000, batch_size: int = 32) -> tuple[float, int]:
    """Mean next-token cross-entropy (nats) over non-overlapping block_size windows of `ids`, and the token count."""
    device = next(model.parameters()).device
    block = model.config.block_size
    ids = torch.as_tensor(ids[: max_tokens + 1].astype("int64"))
    n_windows = (len(ids) - 1) // block
    windows = ids[: n_windows * block + 1]
    inputs, targets = windows[:-1].view(n_windows, block), windows[1:].view(n_windows, block)
    pieces = [(inputs[i:i + batch_size], targets[i:i + batch_size]) for i in range(0, n_windows, batch_size)]
    if len(ids) - 1 > n_windows * block:  # the tail shorter than a window
        pieces.append((ids[n_windows * block:-1][None], ids[n_windows * block + 1:][None]))
    total_nats = 0.0
    for x, y in pieces:
        logits, _ = model(x.to(device))  # no use_cache: a validation pass allocates no KV cache
        total_nats += F.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten(), reduction="sum").item()
    return total_nats / (len(ids) - 1), len(ids) - 1


@torch.no_grad()
def masked_token_metrics(model: torch.nn.Module, ids, max_tokens: int, seed: int) -> dict[str, float]:
    """A masked-LM encoder on non-overlapping windows of `ids`: loss and accuracy on the masked positions."""
    from ..models.lm.mlm import mask_tokens

    block = model.config.block_size
    ids = torch.as_tensor(ids[: max_tokens].astype("int64"))
    windows = ids[: len(ids) // block * block].view(-1, block).to(next(model.parameters()).device)
    corrupted, chosen = mask_tokens(windows, model.config.vocab_size, model.config.mask_prob,
                                    torch.Generator(device=windows.device).manual_seed(seed))
    total_nats, correct = 0.0, 0
    for start in range(0, len(windows), 32):
        logits, _ = model(corrupted[start:start + 32])
        picked = chosen[start:start + 32]
        targets = windows[start:start + 32][picked]
        total_nats += F.cross_entropy(logits[picked].float(), targets, reduction="sum").item()
        correct += (logits[picked][:, : model.config.vocab_size].argmax(-1) == targets).sum().item()
    n = int(chosen.sum())
    return {"n_masked_tokens": n, "masked_loss": total_nats / n, "masked_accuracy": correct / n}


def pipeline_samples(pipeline: TextPipeline, prompts: torch.Tensor, max_new_tokens: int, seed: int) -> list[list[int]]:
    """Token lists of sampled continuations (temperature 1), generated in the pipeline's precision."""
    from ..models.lm.generation import generate_tokens

    new = list(generate_tokens(pipeline.model, prompts, max_new_tokens=max_new_tokens,
                               generator=torch.Generator().manual_seed(seed),
                               allowed_tokens=pipeline.tokenizer.vocab_size,
                               autocast_dtype=pipeline.precision.autocast_dtype))
    return torch.stack(new, dim=1).tolist()
