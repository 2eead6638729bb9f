"""UNet training throughput against diffusers' UNet2DModel, and sampling time per image, on this machine.

    python benchmarks/unet_throughput.py [--rounds 5] [--steps 6]

Training: images/s at 32x32, batch 64, one optimizer step (AdamW) on the eps-prediction loss, fp32 and
bf16 autocast, both networks built with ~1.11 M parameters (1 channel, widths 32/64/64, one residual block
per level, attention at the lowest level). The settings alternate round by round in one process and each
figure is the median step time over all rounds (this machine has occasional ~1 s stalls).
Sampling: seconds per image for DDPM-1000, DDIM-50 and DPM-Solver++-20 on one network (batch 16).
Writes benchmarks/results/unet_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from aigckit.models import FAMILIES
from aigckit.models.diffusion import DiffusionConfig

RESULTS = Path(__file__).parent / "results"
BATCH, SIZE = 64, 32
SAMPLING_BATCH = 16


def ours(memory_format: torch.memory_format):
    family = FAMILIES.get("diffusion")
    model = family.build(DiffusionConfig(image_size=SIZE, channels=1, num_classes=0, base_channels=32,
                                         channel_mults=(1, 2, 2), num_res_blocks=1, attention_resolution=8))
    return model.unet.to(memory_format=memory_format), lambda x, t: model.unet(x, t, None)


def theirs(memory_format: torch.memory_format):
    from diffusers import UNet2DModel

    model = UNet2DModel(sample_size=SIZE, in_channels=1, out_channels=1, block_out_channels=(32, 64, 64),
                        layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"))
    model = model.to(memory_format=memory_format)
    return model, lambda x, t: model(x, t).sample


def step_time(net, forward, precision: str, memory_format, optimizer) -> float:
    x = torch.randn(BATCH, 1, SIZE, SIZE).contiguous(memory_format=memory_format)
    t = torch.randint(0, 1000, (BATCH,))
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = forward(x, t)
    loss = F.mse_loss(out.float(), x)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    torch.manual_seed(0)

    settings = {}
    for name, build in (("aigckit", ours), ("diffusers", theirs)):
        for layout, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
            net, forward = build(fmt)
            optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
            params = sum(p.numel() for p in net.parameters())
            for precision in ("fp32", "bf16"):
                settings[(name, layout, precision)] = (net, forward, fmt, optimizer, params)
    times = {key: [] for key in settings}
    for key, (net, forward, fmt, optimizer, _) in settings.items():  # warm-up
        step_time(net, forward, key[2], fmt, optimizer)
    for round_ in range(args.rounds):
        for key, (net, forward, fmt, optimizer, _) in settings.items():
            times[key] += [step_time(net, forward, key[2], fmt, optimizer) for _ in range(args.steps)]
        print(f"round {round_ + 1}/{args.rounds} done", flush=True)

    rows = []
    for key, values in times.items():
        median = statistics.median(values)
        rows.append({"network": key[0], "layout": key[1], "precision": key[2], "parameters": settings[key][4],
                     "median_ms_per_step": round(median * 1e3, 1), "images_per_s": round(BATCH / median, 1)})
    by_key = {(r["network"], r["layout"], r["precision"]): r["images_per_s"] for r in rows}
    ratios = {f"{layout}_{p}": round(by_key[("aigckit", layout, p)] / by_key[("diffusers", layout, p)], 2)
              for layout in ("nchw", "channels_last") for p in ("fp32", "bf16")}
    fastest = max(r["images_per_s"] for r in rows if r["network"] == "aigckit")
    ratios["fastest_ours_vs_diffusers_fp32_nchw"] = round(fastest / by_key[("diffusers", "nchw", "fp32")], 2)

    sampling = sample_times()
    results = {"training": rows, "ours_over_diffusers": ratios, "sampling_s_per_image": sampling,
               "torch": torch.__version__, "threads": torch.get_num_threads(), "rounds": args.rounds,
               "steps_per_round": args.steps}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "unet_throughput.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| network | layout | precision | parameters | ms / step (median) | images / s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['network']} | {r['layout']} | {r['precision']} | {r['parameters']:,} | {r['median_ms_per_step']} "
              f"| {r['images_per_s']} |" for r in rows]
    lines += ["", "aigckit / diffusers (images/s): " + ", ".join(f"{k} {v}x" for k, v in ratios.items()), "",
              "| sampler | steps | s / image (batch 16, fp32) |", "|---|---|---|"]
    lines += [f"| {s['sampler']} | {s['steps']} | {s['seconds_per_image']} |" for s in sampling]
    (RESULTS / "unet_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def sample_times() -> list[dict]:
    """Seconds per image for each sampler at its usual step count, on one (untrained) network."""
    family = FAMILIES.get("diffusion")
    model = family.build(DiffusionConfig(image_size=SIZE, channels=1, num_classes=0, base_channels=32,
                                         channel_mults=(1, 2, 2), num_res_blocks=1, attention_resolution=8)).eval()
    out = []
    for sampler, steps in (("ddpm", 1000), ("ddim", 50), ("dpm-solver++", 20)):
        start = time.perf_counter()
        family.sample(model, SAMPLING_BATCH, sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(0))
        seconds = time.perf_counter() - start
        out.append({"sampler": sampler, "steps": steps, "seconds_per_image": round(seconds / SAMPLING_BATCH, 4)})
        print(f"{sampler}-{steps}: {seconds / SAMPLING_BATCH:.4f} s/image", flush=True)
    return out


if __name__ == "__main__":
    main()
