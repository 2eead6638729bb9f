"""Text watermark: detection rate on watermarked generations and false positives, against text length.

    aigckit train configs/gpt-shakespeare-char.yaml --run-dir runs/shakespeare
    aigckit train configs/gpt-shakespeare-char.yaml data.tokenizer=bpe --run-dir runs/shakespeare-bpe
    python benchmarks/watermark.py --run runs/shakespeare --run runs/shakespeare-bpe [--n 100]
                                   [--lengths 32,64,128,256,512] [--gamma 0.25] [--delta 2]

For each run and each of --n prompts (20 tokens cut from the validation text) the model writes the longest of
--lengths tokens at temperature 1 with the watermark and once more without it; --n windows of the validation
text (human writing the model never trained on) are the negatives. Each text is re-encoded from its
characters and its first L tokens scored, for every L of --lengths: how much text a verdict needs. The texts
take the --keys in turn (with one fixed key a frequent context-token pair is always green or always red, so a
single key can look better or worse than the scheme is). Every text is scored by the detector alone (key and
tokenizer, no model), each (context, token) pair once, against the effective gamma of the key material
(green-list size / the model's vocabulary). Reports the share above z = 4 per set and length, and the
median z. Writes benchmarks/results/watermark.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from aigckit import load
from aigckit.data.text import held_out_text
from aigckit.evaluation.evaluate import run_config
from timing import machine, write_results

THRESHOLD = 4.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, action="append", required=True,
                        help="a language-model run (repeatable)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--lengths", default="32,64,128,256,512",
                        help="tokens scored, each a prefix of one text")
    parser.add_argument("--gamma", type=float, default=0.25)
    parser.add_argument("--delta", type=float, default=2.0)
    parser.add_argument("--keys", default="42,43,44,45,46")
    args = parser.parse_args()
    lengths = sorted(int(n) for n in args.lengths.split(","))

    results = {"n": args.n, "lengths": lengths, "gamma": args.gamma, "delta": args.delta, "keys": args.keys,
               "threshold_z": THRESHOLD, "machine": machine(), "torch": torch.__version__, "runs": []}
    lines = [f"{args.n} texts per set; share with z > {THRESHOLD:g} (median z); γ = {args.gamma:g}, "
             f"δ = {args.delta:g}, keys {args.keys} in turn", "",
             "| run | tokenizer | tokens | watermarked | unwatermarked | human |",
             "|---|---|---|---|---|---|"]
    for run in args.run:
        row = length_table(run, args, lengths)
        results["runs"].append(row)
        for length in lengths:
            cells = [row["sets"][name][str(length)] for name in ("watermarked", "unwatermarked", "human")]
            shares = " | ".join(f"{c['share_above_threshold']:.1%} ({c['median_z']:.2f})" for c in cells)
            tokenizer = f"{row['tokenizer']} (V = {row['vocab_size']})"
            lines.append(f"| {run.name} | {tokenizer} | {length} | {shares} |")
    write_results("watermark", results, lines)


def length_table(run: Path, args: argparse.Namespace, lengths: list[int]) -> dict:
    """Scores of one run's watermarked, unwatermarked and human texts at each length."""
    pipeline = load(run)
    marks = [pipeline.watermark(int(k), gamma=args.gamma, delta=args.delta) for k in args.keys.split(",")]
    data = run_config(run).data
    held_out = held_out_text(run, data)
    if held_out.warning:
        print(f"warning: {held_out.warning}", file=sys.stderr)
    val_ids = np.asarray(pipeline.tokenizer.encode(held_out.text))
    longest = lengths[-1]
    stride = (len(val_ids) - longest - 20) // args.n
    decode, encode = pipeline.tokenizer.decode, pipeline.tokenizer.encode

    z: dict[str, dict[int, list[float]]] = {name: {n: [] for n in lengths}
                                            for name in ("watermarked", "unwatermarked", "human")}
    for i in range(args.n):
        start, mark = i * stride, marks[i % len(marks)]
        prompt = decode(val_ids[start:start + 20].tolist())
        marked = pipeline.generate(prompt, max_new_tokens=longest, seed=i, watermark=mark)
        texts = {"watermarked": encode(marked),
                 "unwatermarked": encode(pipeline.generate(prompt, max_new_tokens=longest, seed=i)),
                 "human": val_ids[start + 20:start + 20 + longest].tolist()}
        for name, ids in texts.items():
            for n in lengths:
                z[name][n].append(mark.score(ids[:n]).z)
        if (i + 1) % 10 == 0:
            print(f"{run.name} {i + 1}/{args.n}: median z watermarked at {lengths[0]} tokens "
                  f"{statistics.median(z['watermarked'][lengths[0]]):.2f}", flush=True)
    return {"run": str(run), "model": pipeline.model.config.name, "tokenizer": data.tokenizer,
            "vocab_size": marks[0].vocab_size, "effective_gamma": marks[0].effective_gamma,
            "sets": {name: {str(n): summary(values) for n, values in by_length.items()}
                     for name, by_length in z.items()}}


def summary(values: list[float]) -> dict:
    """The share of z-scores above the threshold and their median."""
    return {"share_above_threshold": sum(v > THRESHOLD for v in values) / len(values),
            "median_z": round(statistics.median(values), 2)}


if __name__ == "__main__":
    main()
