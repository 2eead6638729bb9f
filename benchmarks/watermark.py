"""Text watermark: detection rate on watermarked generations and false positives on held-out human text.

    aigckit train configs/gpt-shakespeare-char.yaml --run-dir runs/shakespeare
    python benchmarks/watermark.py --run runs/shakespeare [--n 100] [--tokens 200] [--gamma 0.25] [--delta 2]

For each of --n prompts (20 characters cut from the validation text) the model writes --tokens tokens at
temperature 1 with the watermark and once more without it; --n windows of --tokens tokens of the validation
text (human writing the model never trained on) are the negatives. The texts take the --keys in turn (with
one fixed key a frequent context-token pair is always green or always red, so a single key can look better
or worse than the scheme is). Every text is scored by the detector alone (key and tokenizer, no model),
each (context, token) pair once, against the effective gamma of the key material (green-list size / the
model's vocabulary). The validation text is read with the run's own tokenizer. Reports the share above z = 4
for each set and the median z. Writes benchmarks/results/watermark.{json,md}.
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
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--gamma", type=float, default=0.25)
    parser.add_argument("--delta", type=float, default=2.0)
    parser.add_argument("--keys", default="42,43,44,45,46")
    args = parser.parse_args()

    pipeline = load(args.run)
    marks = [pipeline.watermark(int(k), gamma=args.gamma, delta=args.delta) for k in args.keys.split(",")]
    held_out = held_out_text(args.run, run_config(args.run).data)
    if held_out.warning:
        print(f"warning: {held_out.warning}", file=sys.stderr)
    val_ids = np.asarray(pipeline.tokenizer.encode(held_out.text))
    stride = (len(val_ids) - args.tokens) // args.n
    starts = [i * stride for i in range(args.n)]
    decode, encode = pipeline.tokenizer.decode, pipeline.tokenizer.encode

    z: dict[str, list[float]] = {"watermarked": [], "unwatermarked": [], "human": []}
    for i, start in enumerate(starts):
        mark = marks[i % len(marks)]
        prompt = decode(val_ids[start:start + 20].tolist())
        marked = pipeline.generate(prompt, max_new_tokens=args.tokens, seed=i, watermark=mark)
        plain = pipeline.generate(prompt, max_new_tokens=args.tokens, seed=i)
        human = val_ids[start:start + args.tokens].tolist()
        z["watermarked"].append(mark.score(encode(marked)).z)
        z["unwatermarked"].append(mark.score(encode(plain)).z)
        z["human"].append(mark.score(human).z)
        if (i + 1) % 10 == 0:
            print(f"{i + 1}/{args.n}: median z watermarked {statistics.median(z['watermarked']):.2f}", flush=True)

    results = {"run": str(args.run), "model": pipeline.model.config.name, "vocab_size": marks[0].vocab_size,
               "n": args.n, "tokens": args.tokens, "gamma": args.gamma, "effective_gamma": marks[0].effective_gamma,
               "delta": args.delta, "keys": args.keys,
               "threshold_z": THRESHOLD,
               "machine": machine(), "torch": torch.__version__}
    lines = [f"| text ({args.n} × {args.tokens} tokens) | share with z > {THRESHOLD:g} | median z |", "|---|---|---|"]
    for name, values in z.items():
        share = sum(v > THRESHOLD for v in values) / len(values)
        results[name] = {"share_above_threshold": share, "median_z": round(statistics.median(values), 2),
                         "max_z": round(max(values), 2)}
        lines.append(f"| {name} | {share:.1%} | {statistics.median(values):.2f} |")
    write_results("watermark", results, lines)


if __name__ == "__main__":
    main()
