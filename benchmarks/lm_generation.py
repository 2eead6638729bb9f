"""Greedy generation speed: our GPT (KV cache) against transformers' generate() on the same GPT-2 weights.

    python benchmarks/lm_generation.py [--repeats 9] [--new-tokens 200]

A randomly initialised GPT-2 of nanoGPT's CPU-recipe shape (4 layers, 4 heads, 128 wide, vocabulary 65) is
saved with save_pretrained, loaded into our GPT through the interop (same logits), and both generate 200 new
tokens greedily from a one-token prompt at batch 1 and 16, alternating, in one process. Figures are medians
of tokens/s (batch x new tokens / wall time). Writes benchmarks/results/lm_generation.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import transformers

from aigckit.models.lm import gpt_from_transformers
from aigckit.models.lm.generation import generate_tokens
from timing import machine, write_results



def time_ours(model, prompt: torch.Tensor, new_tokens: int) -> float:
    start = time.perf_counter()
    tokens = list(generate_tokens(model, prompt, max_new_tokens=new_tokens, greedy=True))
    assert len(tokens) == new_tokens
    return time.perf_counter() - start


@torch.no_grad()
def time_transformers(model, prompt: torch.Tensor, new_tokens: int) -> float:
    start = time.perf_counter()
    out = model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                         pad_token_id=0)
    assert out.shape[1] == prompt.shape[1] + new_tokens
    return time.perf_counter() - start


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
    results = {"benchmark": "greedy generation, GPT-2 4x128 vocab 65, 1-token prompt, "
                            f"{args.new_tokens} new tokens", "machine": machine(), "torch": torch.__version__,
               "transformers": transformers.__version__, "repeats": args.repeats}
    lines = ["| batch | aigckit tokens/s | transformers generate() tokens/s | ratio |", "|---|---|---|---|"]
    for batch in (1, 16):
        prompt = torch.ones(batch, 1, dtype=torch.long)  # pad_token_id is 0
        time_ours(ours, prompt, 10), time_transformers(reference, prompt, 10)  # warm-up
        times: dict[str, list[float]] = {"aigckit": [], "transformers": []}
        for _ in range(args.repeats):
            times["aigckit"].append(time_ours(ours, prompt, args.new_tokens))
            times["transformers"].append(time_transformers(reference, prompt, args.new_tokens))
        speed = {k: batch * args.new_tokens / statistics.median(v) for k, v in times.items()}
        ratio = speed["aigckit"] / speed["transformers"]
        results[f"batch_{batch}"] = {"aigckit_tokens_per_s": round(speed["aigckit"]),
                                     "transformers_tokens_per_s": round(speed["transformers"]),
                                     "ratio": round(ratio, 2)}
        lines.append(f"| {batch} | {speed['aigckit']:.0f} | {speed['transformers']:.0f} | {ratio:.2f}x |")
        print(lines[-1], flush=True)
    write_results("lm_generation", results, lines)


if __name__ == "__main__":
    main()
