"""Greedy generation speed: our GPT (KV cache) and the server's TextEngine against transformers' generate() on the
same GPT-2 weights.

    python benchmarks/lm_generation.py [--repeats 9] [--new-tokens 200]

A randomly initialised GPT-2 of nanoGPT's CPU-recipe shape (4 layers, 4 heads, 128 wide, vocabulary 65) is
saved with save_pretrained, loaded into our GPT through the interop (same logits), and generates 200 new tokens
greedily from a one-token prompt at batch 1 and 16, three ways, alternating, in one process:

- aigckit generate_tokens: the library's loop over a batch of prompts (one KV cache for the batch);
- aigckit TextEngine: the server's continuous-batching loop (serving/text_engine.py), the requests queued
  before its worker starts, timed from start to the last request's result (prefills, the batched decoding
  steps, per-request token choice, text decoding and stop-string checks included);
- transformers generate().

Figures are medians of tokens/s (batch x new tokens / wall time). The engine's steps at batch 16 are then
profiled (torch.profiler), and the operators that take most of their time are written beside the figures.
Writes benchmarks/results/lm_generation.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time

import torch
import transformers
from torch.profiler import ProfilerActivity, profile

from aigckit.data.tokenizers import CharTokenizer
from aigckit.models.lm import gpt_from_transformers
from aigckit.models.lm.generation import generate_tokens
from aigckit.pipelines import TextPipeline
from aigckit.serving.text_engine import TextEngine, TextRequest
from timing import machine, write_results

TARGETS = {1: 3.0, 16: 2.0}  # issue 10: the engine against generate(), tokens/s


class Sink:
    """The least a TextEngine request needs: where its result goes."""

    def __init__(self) -> None:
        self.cancelled, self.done = threading.Event(), threading.Event()
        self.result: dict | None = None
        self.error: str | None = None

    def set_running(self) -> None:
        pass

    def emit_text(self, piece: str) -> None:
        pass

    def finish(self, result: dict) -> None:
        self.result = result
        self.done.set()

    def fail(self, message: str) -> None:
        self.error = message
        self.done.set()


def time_ours(model, prompt: torch.Tensor, new_tokens: int) -> float:
    start = time.perf_counter()
    tokens = list(generate_tokens(model, prompt, max_new_tokens=new_tokens, greedy=True))
    assert len(tokens) == new_tokens
    return time.perf_counter() - start


def time_engine(pipeline: TextPipeline, prompt: str, batch: int, new_tokens: int) -> float:
    engine = TextEngine(pipeline, max_batch=batch)
    sinks = [Sink() for _ in range(batch)]
    for sink in sinks:
        engine.submit(TextRequest(prompt, new_tokens, greedy=True), sink)
    start = time.perf_counter()
    engine.start()
    for sink in sinks:
        sink.done.wait()
    elapsed = time.perf_counter() - start
    engine.stop()
    assert all(s.error is None and s.result["completion_tokens"] == new_tokens for s in sinks)
    return elapsed


@torch.no_grad()
def time_transformers(model, prompt: torch.Tensor, new_tokens: int) -> float:
    start = time.perf_counter()
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                         min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    assert out.shape[1] == prompt.shape[1] + new_tokens
    return time.perf_counter() - start


def engine_profile(pipeline: TextPipeline, prompt: str, batch: int, new_tokens: int, top: int = 8) -> list[dict]:
    """The operators taking most of the engine's time over one run, by self CPU time (the engine runs in this
    thread: the profiler sees only the thread that starts it)."""
    engine = TextEngine(pipeline, max_batch=batch)
    for _ in range(batch):
        engine.submit(TextRequest(prompt, new_tokens, greedy=True), Sink())
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        engine.run_until_idle()
        wall_us = 1e6 * (time.perf_counter() - start)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    in_ops = sum(e.self_cpu_time_total for e in events)
    rows = [{"op": e.key, "calls": e.count, "self_ms": round(e.self_cpu_time_total / 1000, 1),
             "share": round(e.self_cpu_time_total / wall_us, 3)} for e in events[:top]]
    # the rest of the wall time: Python (the engine's bookkeeping, module calls) and the profiler's own cost
    rows.append({"op": "outside torch operators", "calls": None, "self_ms": round((wall_us - in_ops) / 1000, 1),
                 "share": round(1 - in_ops / wall_us, 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--new-tokens", type=int, default=200)
    args = parser.parse_args()

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=65, n_positions=256, n_embd=128, n_layer=4, n_head=4,
                                     bos_token_id=0, eos_token_id=0)
    reference = transformers.GPT2LMHeadModel(config).eval()
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(folder)
        ours = gpt_from_transformers(folder)
    tokenizer = CharTokenizer([chr(33 + i) for i in range(64)])  # 64 characters + U+FFFD: the 65 ids
    pipeline = TextPipeline(ours, tokenizer)
    prompt_text = tokenizer.decode([1])  # the id the other two start from
    results = {"benchmark": "greedy generation, GPT-2 4x128 vocab 65, 1-token prompt, "
                            f"{args.new_tokens} new tokens", "machine": machine(), "torch": torch.__version__,
               "transformers": transformers.__version__, "repeats": args.repeats,
               "targets": {f"engine_ratio_batch_{b}": t for b, t in TARGETS.items()}}
    lines = ["| batch | aigckit generate_tokens tokens/s | aigckit TextEngine tokens/s | transformers generate() "
             "tokens/s | generate_tokens ratio | TextEngine ratio (target) |", "|---|---|---|---|---|---|"]
    for batch in TARGETS:
        prompt = torch.ones(batch, 1, dtype=torch.long)  # pad_token_id is 0
        time_ours(ours, prompt, 10), time_engine(pipeline, prompt_text, batch, 10)  # warm-up
        time_transformers(reference, prompt, 10)
        times: dict[str, list[float]] = {"aigckit": [], "engine": [], "transformers": []}
        for _ in range(args.repeats):
            times["aigckit"].append(time_ours(ours, prompt, args.new_tokens))
            times["engine"].append(time_engine(pipeline, prompt_text, batch, args.new_tokens))
            times["transformers"].append(time_transformers(reference, prompt, args.new_tokens))
        speed = {k: batch * args.new_tokens / statistics.median(v) for k, v in times.items()}
        ratio = {k: speed[k] / speed["transformers"] for k in ("aigckit", "engine")}
        results[f"batch_{batch}"] = {"aigckit_tokens_per_s": round(speed["aigckit"]),
                                     "engine_tokens_per_s": round(speed["engine"]),
                                     "transformers_tokens_per_s": round(speed["transformers"]),
                                     "ratio": round(ratio["aigckit"], 2), "engine_ratio": round(ratio["engine"], 2),
                                     "engine_target_met": ratio["engine"] >= TARGETS[batch]}
        lines.append(f"| {batch} | {speed['aigckit']:.0f} | {speed['engine']:.0f} | {speed['transformers']:.0f} | "
                     f"{ratio['aigckit']:.2f}x | {ratio['engine']:.2f}x (>= {TARGETS[batch]:g}x) |")
        print(lines[-1], flush=True)
    results["engine_profile_batch_16"] = engine_profile(pipeline, prompt_text, 16, args.new_tokens)
    lines += ["", "Where the engine's time goes at batch 16 (torch.profiler, self CPU time as a share of the wall time "
              "of one profiled run):", "",
              "| operator | calls | ms | share |", "|---|---|---|---|"]
    lines += [f"| {p['op']} | {p['calls'] or ''} | {p['self_ms']} | {p['share']:.0%} |"
              for p in results["engine_profile_batch_16"]]
    lines += ["", f"{results['machine']}; torch {torch.__version__}, transformers {transformers.__version__}."]
    write_results("lm_generation", results, lines)


if __name__ == "__main__":
    main()
