"""The image input pipeline on a folder of PNG files: first decode, cached load, memory, training throughput.

    python benchmarks/data_pipeline.py [--images 50000] [--work /tmp]

Writes a synthetic folder of --images PNG files, 64x64 RGB in 10 class sub-folders (smooth random shapes with
noise, so they compress as photos do), under --work (reused when complete), then measures, each phase in a fresh
process so that none inherits another's memory:
  1. the first decode into an empty cache (worker processes: one per CPU), its time and the peak memory of the
     process and its workers together (sum of their proportional set sizes, PSS, sampled every 50 ms);
  2. the cached load (the dataset opened from the cache) and one pass of training batches over the whole set
     (batch 64, in-process) in a new process: its time and that process's peak resident memory (ru_maxrss),
     against the uint8 size of the data (target: at most 1.5x);
  3. training-input throughput from the cache through training_batches at batch 64, images/s (median of 3
     alternating rounds), with 0 and 2 worker processes, flip off and on, and the CPU time all processes spend
     per batch; beside what the GAN and diffusion training steps consume (benchmarks/results/
     {gan,unet}_throughput.json, measured at 32x32).
Prints the figures and writes benchmarks/results/data_pipeline.json (not for runs with --images other than
50000 unless --write is given).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
SIZE, CLASSES, BATCH = 64, 10, 64


def _write_pngs(job: tuple[str, int, int]) -> None:
    from PIL import Image, ImageFilter

    folder, start, stop = job
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((SIZE, SIZE),
                                                                                          Image.Resampling.BICUBIC)
        pixels = np.asarray(coarse.filter(ImageFilter.SMOOTH), dtype=np.int16) + rng.integers(-8, 9, (SIZE, SIZE, 3))
        path = Path(folder) / f"class{i % CLASSES}" / f"{i:06d}.png"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)


def write_folder(work: Path, n: int) -> Path:
    """The folder of n PNGs; reused when a previous run finished writing it."""
    folder = work / f"aigckit-pngs-{n}-{SIZE}"
    if (folder / "COMPLETE").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    for c in range(CLASSES):
        (folder / f"class{c}").mkdir(parents=True)
    step = 500
    jobs = [(str(folder), start, min(start + step, n)) for start in range(0, n, step)]
    started = time.perf_counter()
    with multiprocessing.Pool(os.cpu_count()) as pool:
        pool.map(_write_pngs, jobs)
    (folder / "COMPLETE").write_text(f"{n} files\n")
    print(f"wrote {n:,} PNG files to {folder} in {time.perf_counter() - started:.0f} s")
    return folder


DECODE = """
import json, sys, time
from aigckit.config import DataConfig
from aigckit.data import load_dataset
started = time.perf_counter()
data = load_dataset(DataConfig(name="imagefolder", root=sys.argv[1], image_size=64, val_fraction=0.0))
print(json.dumps({"seconds": time.perf_counter() - started, "images": len(data),
                  "uint8_bytes": int(data.storage.nbytes)}))
"""

PASS = """
import json, resource, sys, time, itertools
from aigckit.config import DataConfig
from aigckit.data import load_dataset, training_batches
config = DataConfig(name="imagefolder", root=sys.argv[1], image_size=64, val_fraction=0.0)
started = time.perf_counter()
data = load_dataset(config)
load = time.perf_counter() - started
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
n = len(data) // 64
started = time.perf_counter()
for batch in itertools.islice(training_batches(data, batch_size=64, seed=0), n):
    pass
seconds = time.perf_counter() - started
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
started = time.perf_counter()
load_dataset(config)
print(json.dumps({"load_seconds": load, "load_again_seconds": time.perf_counter() - started,
                  "pass_seconds": seconds, "pass_images_per_s": n * 64 / seconds,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "rss_file_bytes_after_pass": int(status["RssFile"].split()[0]) * 1024,
                  "rss_after_load_bytes": baseline, "uint8_bytes": int(data.storage.nbytes)}))
"""

THROUGHPUT = """
import json, resource, sys, time, itertools
from aigckit.config import DataConfig
from aigckit.data import load_dataset, training_batches
data = load_dataset(DataConfig(name="imagefolder", root=sys.argv[1], image_size=64, val_fraction=0.0))
batches = int(sys.argv[2])

def cpu_seconds():  # this process and its finished children (DataLoader workers are joined when a stream ends)
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

runs = {}
for repeat in range(3):  # settings alternate, so a busy moment of the machine does not fall on one of them
    for workers in (0, 2):
        for flip in (False, True):
            cpu = cpu_seconds()
            stream = training_batches(data, batch_size=64, seed=repeat, flip=flip, num_workers=workers)
            for _ in itertools.islice(stream, 10):  # warm-up: workers start
                pass
            started = time.perf_counter()
            for _ in itertools.islice(stream, batches):
                pass
            seconds = time.perf_counter() - started
            del stream
            runs.setdefault((workers, flip), []).append((seconds, cpu_seconds() - cpu))
out = []
for (workers, flip), times in runs.items():
    wall = sorted(t for t, _ in times)[len(times) // 2]
    cpu = sorted(c for _, c in times)[len(times) // 2]
    out.append({"num_workers": workers, "flip": flip, "images_per_s": round(batches * 64 / wall),
                "ms_per_batch": round(wall / batches * 1000, 2),
                "cpu_ms_per_batch_all_processes": round(cpu / (batches + 10) * 1000, 2)})
print(json.dumps(out))
"""


def run_measured(code: str, args: list[str], env: dict[str, str]) -> tuple[dict, float]:
    """Run `code` in a fresh Python; its JSON answer and the peak PSS of it and its children together (bytes)."""
    import psutil

    process = subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, text=True)
    watched = psutil.Process(process.pid)
    peak = 0.0
    while process.poll() is None:
        total = 0
        for p in [watched, *watched.children(recursive=True)]:
            try:
                total += p.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        peak = max(peak, total)
        time.sleep(0.05)
    out = process.stdout.read()
    if process.returncode != 0:
        raise SystemExit(f"a measured phase failed (exit {process.returncode})")
    return json.loads(out.strip().splitlines()[-1]), peak


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50_000, help="PNG files in the synthetic folder")
    parser.add_argument("--work", type=Path, default=Path("/tmp"), help="where the folder and its cache go")
    parser.add_argument("--batches", type=int, default=400, help="timed batches per throughput setting")
    parser.add_argument("--write", action="store_true", help="write the results file even for --images != 50000")
    args = parser.parse_args()

    folder = write_folder(args.work, args.images)
    load_before = os.getloadavg()[0]  # other work on the machine slows every figure below
    cache = args.work / f"aigckit-cache-{args.images}"
    shutil.rmtree(cache, ignore_errors=True)  # the first decode starts from an empty cache
    env = {**os.environ, "AIGCKIT_CACHE": str(cache)}

    decode, decode_peak = run_measured(DECODE, [str(folder)], env)
    size = decode["uint8_bytes"]
    print(f"first decode: {decode['images']:,} images in {decode['seconds']:.1f} s "
          f"({decode['images'] / decode['seconds']:,.0f} images/s, {os.cpu_count()} worker processes); "
          f"peak memory (PSS, with workers) {decode_peak / 2**20:,.0f} MiB = {decode_peak / size:.2f}x "
          f"the uint8 data ({size / 2**20:,.0f} MiB)")
    cached, _ = run_measured(PASS, [str(folder)], env)
    ratio = cached["peak_rss_bytes"] / size
    print(f"cached load: {cached['load_seconds'] * 1000:.0f} ms in a fresh process "
          f"({cached['load_again_seconds'] * 1000:.0f} ms again); one pass of batches of 64: "
          f"{cached['pass_seconds']:.1f} s ({cached['pass_images_per_s']:,.0f} images/s); peak RSS of that process "
          f"{cached['peak_rss_bytes'] / 2**20:,.0f} MiB = {ratio:.2f}x the uint8 data (target <= 1.5x): "
          f"{cached['rss_after_load_bytes'] / 2**20:,.0f} MiB after the load (Python, torch), and the memory-mapped "
          f"cache's pages ({cached['rss_file_bytes_after_pass'] / 2**20:,.0f} MiB file-backed after the pass)")
    throughput, _ = run_measured(THROUGHPUT, [str(folder), str(args.batches)], env)
    for row in throughput:
        print(f"training input, batch 64, {row['num_workers']} workers, flip {'on ' if row['flip'] else 'off'}: "
              f"{row['images_per_s']:,} images/s ({row['ms_per_batch']} ms a batch; CPU, all processes: "
              f"{row['cpu_ms_per_batch_all_processes']} ms a batch)")
    consumers = {}
    for name, path, pick in (("gan_dcgan_32px_fp32", "gan_throughput.json", lambda d: d["fp32"]["images_per_s"]),
                             ("diffusion_unet_32px_fp32", "unet_throughput.json",
                              lambda d: d["training"][0]["images_per_s"])):
        try:
            consumers[name] = pick(json.loads((RESULTS / path).read_text()))
        except (OSError, KeyError, ValueError):
            pass
    slowest = min(row["images_per_s"] for row in throughput)
    for name, rate in consumers.items():
        print(f"  {name} training consumes {rate} images/s: the slowest pipeline setting delivers "
              f"{slowest / rate:.0f}x that")

    results = {
        "benchmark": f"imagefolder pipeline on {decode['images']:,} synthetic PNG files, {SIZE}x{SIZE} RGB",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "torch": __import__("torch").__version__,
        "images": decode["images"], "uint8_mib": round(size / 2**20, 1),
        "first_decode": {"seconds": round(decode["seconds"], 2), "worker_processes": os.cpu_count(),
                         "images_per_s": round(decode["images"] / decode["seconds"]),
                         "peak_pss_mib_with_workers": round(decode_peak / 2**20),
                         "peak_over_uint8": round(decode_peak / size, 2)},
        "cached": {"load_ms": round(cached["load_seconds"] * 1000, 1),
                   "load_again_ms": round(cached["load_again_seconds"] * 1000, 1),
                   "rss_file_backed_mib_after_pass": round(cached["rss_file_bytes_after_pass"] / 2**20),
                   "one_pass_seconds": round(cached["pass_seconds"], 2),
                   "rss_after_load_mib": round(cached["rss_after_load_bytes"] / 2**20),
                   "peak_rss_mib_load_and_one_pass": round(cached["peak_rss_bytes"] / 2**20),
                   "peak_over_uint8": round(ratio, 2), "target_peak_over_uint8": 1.5},
        "training_input_batch_64": throughput,
        "training_consumes_images_per_s": consumers,
    }
    if args.images == 50_000 or args.write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "data_pipeline.json").write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {RESULTS / 'data_pipeline.json'}")


if __name__ == "__main__":
    main()
