"""The server under load, on loopback: batched against one-request-at-a-time, latency as LLM servers report it.

    python benchmarks/serving.py [--quick]

Runs (untrained weights of the presets: speed does not depend on training) of configs/gpt-pydoc.yaml,
configs/dcgan-digits.yaml and configs/diffusion-digits.yaml are served by `aigckit serve` in a subprocess, twice:
batched (the defaults) and one request at a time (--max-batch-images 1 --max-batch-text 1 --batch-window-ms 0: no
wait for batch-mates that cannot come). An asyncio client sends

1. closed-loop throughput at concurrency 1, 8 and 32: text completions of 64 tokens (tokens/s), DCGAN images and
   diffusion images (DPM-Solver++, 20 steps) one per request (images/s), with p50/p99 latency;
2. streamed completions at Poisson arrival rates (vLLM's `bench serve` figures): time to first token, inter-token
   latency, end-to-end latency (p50/p95/p99), failures, and goodput (requests/s meeting TTFT <= 1 s and
   end-to-end <= 10 s);
3. 16 concurrent streams (closed loop): failures and p99;
4. a burst of 200 mixed concurrent requests: status codes, and the server's resident memory before and after.

Every loop sends a fixed number of requests and stops. Writes benchmarks/results/serving.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from timing import machine, write_results

ROOT = Path(__file__).resolve().parent.parent
PRESETS = {"gpt": "configs/gpt-pydoc.yaml", "dcgan": "configs/dcgan-digits.yaml",
           "diffusion": "configs/diffusion-digits.yaml"}
TEXT_TOKENS = 64


def make_runs(folder: Path) -> list[Path]:
    """One run per preset, trained one step (the weights' values do not change the speed)."""
    from aigckit.config import load_config
    from aigckit.training import Trainer

    runs = []
    for name, preset in PRESETS.items():
        config = load_config(ROOT / preset, ["train.max_steps=1", "train.sample_every=1000"])
        Trainer(config, folder / name, show_progress=False).fit()
        runs.append(folder / name)
    return runs


class Server:
    """`aigckit serve` in a subprocess on a free loopback port."""

    def __init__(self, runs: list[Path], data_dir: Path, extra: list[str]) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "aigckit", "serve", *map(str, runs), "--port", str(self.port),
                   "--data-dir", str(data_dir), "--max-queue", "512", *extra]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not become ready in 180 s")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(60)

    def rss_mb(self) -> float:
        """The server's resident memory (VmRSS), MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def request_for(kind: str, seed: int) -> tuple[str, dict]:
    if kind == "text":
        return "/v1/completions", {"model": "gpt", "prompt": "The ", "max_tokens": TEXT_TOKENS, "seed": seed}
    if kind == "dcgan":
        return "/v1/images/generations", {"model": "dcgan", "n": 1, "seed": seed}
    return "/v1/images/generations", {"model": "diffusion", "n": 1, "seed": seed, "sampler": "dpm-solver++",
                                      "steps": 20}


async def closed_loop(url: str, kind: str, concurrency: int, total: int) -> dict:
    """`concurrency` clients send `total` requests between them, each waiting for its answer before the next."""
    latencies, produced, failures = [], 0, 0
    counter = iter(range(total))

    async def client(session: httpx.AsyncClient) -> None:
        nonlocal produced, failures
        for i in counter:
            path, body = request_for(kind, i)
            start = time.perf_counter()
            answer = await session.post(url + path, json=body)
            latencies.append(time.perf_counter() - start)
            if answer.status_code != 200:
                failures += 1
                continue
            payload = answer.json()
            produced += payload["usage"]["completion_tokens"] if kind == "text" else len(payload["data"])

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency + 4)) as session:
        await client_warmup(session, url, kind)
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return {"kind": kind, "concurrency": concurrency, "requests": total, "failures": failures,
            "per_second": produced / wall, "unit": "tokens/s" if kind == "text" else "images/s",
            "p50_s": percentile(latencies, 50), "p99_s": percentile(latencies, 99), "wall_s": wall}


async def client_warmup(session: httpx.AsyncClient, url: str, kind: str) -> None:
    path, body = request_for(kind, 0)
    await session.post(url + path, json=body)


async def stream_one(session: httpx.AsyncClient, url: str, seed: int) -> dict:
    """One streamed completion: time to first token, the gaps between tokens, end to end."""
    body = {"model": "gpt", "prompt": "The ", "max_tokens": TEXT_TOKENS, "seed": seed, "stream": True}
    start = time.perf_counter()
    times = []
    try:
        async with session.stream("POST", url + "/v1/completions", json=body) as answer:
            if answer.status_code != 200:
                return {"ok": False}
            async for line in answer.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    chunk = json.loads(line[6:])
                    if chunk.get("choices") and chunk["choices"][0]["text"]:
                        times.append(time.perf_counter())
    except httpx.HTTPError:
        return {"ok": False}
    end = time.perf_counter()
    if not times:
        return {"ok": False}
    gaps = list(np.diff(times)) if len(times) > 1 else []
    return {"ok": True, "ttft": times[0] - start, "itl": gaps, "e2e": end - start}


def summarise_streams(results: list[dict], wall: float) -> dict:
    ok = [r for r in results if r["ok"]]
    ttft = [r["ttft"] for r in ok]
    itl = [g for r in ok for g in r["itl"]]
    e2e = [r["e2e"] for r in ok]
    good = [r for r in ok if r["ttft"] <= 1.0 and r["e2e"] <= 10.0]
    row = {"requests": len(results), "failures": len(results) - len(ok), "goodput_per_s": len(good) / wall,
           "throughput_per_s": len(ok) / wall}
    for name, values in (("ttft", ttft), ("itl", itl), ("e2e", e2e)):
        for q in (50, 95, 99):
            row[f"{name}_p{q}_ms"] = 1000 * percentile(values, q)
    return row


async def poisson(url: str, rate: float, total: int, seed: int = 0) -> dict:
    """`total` streamed completions arriving as a Poisson process of `rate` requests/s."""
    rng = random.Random(seed)
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=total + 4)) as session:
        tasks = []
        start = time.perf_counter()
        for i in range(total):
            tasks.append(asyncio.create_task(stream_one(session, url, i)))
            await asyncio.sleep(rng.expovariate(rate))
        results = await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    return {"rate_per_s": rate, **summarise_streams(results, wall)}


async def concurrent_streams(url: str, streams: int, total: int) -> dict:
    """`streams` clients, each streaming one completion after another, `total` in all."""
    counter = iter(range(total))
    results = []

    async def client(session):
        for i in counter:
            results.append(await stream_one(session, url, i))

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=streams + 4)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(streams)))
        wall = time.perf_counter() - start
    return {"streams": streams, **summarise_streams(results, wall)}


async def burst(url: str, total: int = 200) -> dict:
    """`total` mixed requests at once: image generations, edits, jobs, completions and bad requests."""
    import io

    from PIL import Image

    def png(image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    picture = png(Image.new("L", (8, 8), 128))
    mask = Image.new("L", (8, 8), 0)
    mask.paste(255, (2, 2, 5, 5))
    mask = png(mask)

    async def one(session, i: int) -> int:
        kind = i % 5
        if kind == 0:
            answer = await session.post(url + "/v1/images/generations", json={"model": "diffusion", "steps": 10})
        elif kind == 1:
            answer = await session.post(url + "/v1/images/edits", data={"model": "telea"},
                                        files={"image": ("a.png", picture), "mask": ("m.png", mask)})
        elif kind == 2:
            answer = await session.post(url + "/v1/jobs", json={"type": "images.generations",
                                                                "request": {"model": "dcgan", "n": 2}})
        elif kind == 3:
            answer = await session.post(url + "/v1/completions", json={"model": "gpt", "prompt": "a",
                                                                       "max_tokens": 16})
        else:
            answer = await session.post(url + "/v1/images/generations", json={"model": "nope"})
        return answer.status_code

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=total + 4)) as session:
        codes = await asyncio.gather(*(one(session, i) for i in range(total)))
    counts: dict[str, int] = {}
    for code in codes:
        counts[str(code)] = counts.get(str(code), 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a check that it runs)")
    args = parser.parse_args()
    scale = 1 if args.quick else 4
    levels = (1, 8, 32)
    results: dict = {"machine": machine(), "command": "python benchmarks/serving.py" + (" --quick" * args.quick),
                     "throughput": [], "poisson": [], "streams": None, "burst": None}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = make_runs(tmp / "runs")
        one_at_a_time = ["--max-batch-images", "1", "--max-batch-text", "1", "--batch-window-ms", "0"]
        for mode, extra in (("batched", []), ("one at a time", one_at_a_time)):
            with Server(runs, tmp / f"data-{len(extra)}", extra) as server:
                for kind in ("text", "dcgan", "diffusion"):
                    for c in levels:
                        row = asyncio.run(closed_loop(server.url, kind, c, total=max(4 * scale, c * scale)))
                        results["throughput"].append({"mode": mode, **row})
                        print(mode, row, flush=True)
                if mode == "batched":
                    for rate in (2.0, 8.0, 32.0):
                        row = asyncio.run(poisson(server.url, rate, total=16 * scale))
                        results["poisson"].append(row)
                        print("poisson", row, flush=True)
                    results["streams"] = asyncio.run(concurrent_streams(server.url, 16, total=16 * scale))
                    print("streams", results["streams"], flush=True)
                    before = server.rss_mb()
                    codes = asyncio.run(burst(server.url))
                    time.sleep(2)
                    results["burst"] = {"codes": codes, "rss_before_mb": before, "rss_after_mb": server.rss_mb(),
                                        "health_after": httpx.get(server.url + "/health").status_code}
                    print("burst", results["burst"], flush=True)
    write_results("serving", results, table(results))


def table(results: dict) -> list[str]:
    lines = [f"Machine: {results['machine']}. Command: `{results['command']}`.", "",
             "| workload | concurrency | batched | one at a time | speed-up | p50 / p99 latency, batched (s) |",
             "|---|---:|---:|---:|---:|---:|"]
    rows = {(r["mode"], r["kind"], r["concurrency"]): r for r in results["throughput"]}
    for kind in ("text", "dcgan", "diffusion"):
        for c in (1, 8, 32):
            batched, single = rows[("batched", kind, c)], rows[("one at a time", kind, c)]
            lines.append(f"| {kind} ({batched['unit']}) | {c} | {batched['per_second']:.1f} | "
                         f"{single['per_second']:.1f} | {batched['per_second'] / single['per_second']:.1f}x | "
                         f"{batched['p50_s']:.2f} / {batched['p99_s']:.2f} |")
    lines += ["", "| arrival rate (req/s) | requests | failures | TTFT p50/p99 (ms) | ITL p50/p99 (ms) | "
                  "end-to-end p50/p95/p99 (ms) | goodput (req/s) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["poisson"] + [dict(results["streams"], rate_per_s="16 streams")]:
        lines.append(f"| {r['rate_per_s']} | {r['requests']} | {r['failures']} | {r['ttft_p50_ms']:.0f} / "
                     f"{r['ttft_p99_ms']:.0f} | {r['itl_p50_ms']:.1f} / {r['itl_p99_ms']:.1f} | "
                     f"{r['e2e_p50_ms']:.0f} / {r['e2e_p95_ms']:.0f} / {r['e2e_p99_ms']:.0f} | "
                     f"{r['goodput_per_s']:.2f} |")
    b = results["burst"]
    lines += ["", f"Burst of 200 mixed requests: status codes {b['codes']}; server memory {b['rss_before_mb']:.0f} MB "
                  f"before, {b['rss_after_mb']:.0f} MB after; /health afterwards {b['health_after']}."]
    return lines


if __name__ == "__main__":
    main()
