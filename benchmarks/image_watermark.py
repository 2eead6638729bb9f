"""Image watermark: bit accuracy, detection rate and PSNR through the same attacks for every method, and the
false-positive rate on unmarked images.

    python benchmarks/image_watermark.py [--n 20] [--fpr-images 10000] [--fpr-photos 10000] [--images FOLDER]
        [--methods stdm,ss,iss,dwtDct] [--sets "64 px,photos"] [--name image_watermark]

Methods: ours (aigckit.provenance, spread-transform dither modulation, "stdm"), the same band and energy embedded
as plain spread spectrum ("ss") and as host-cancelling spread spectrum ("iss"), and invisible-watermark's dwtDct
(pip install invisible-watermark), which refuses images under 256 px: images smaller than that are upscaled to 256
(nearest) for it, marked, decoded and attacked at 256, and their PSNR is measured at 256.
Images: MNIST test (28 px), Fashion-MNIST test (32 and 64 px) through aigckit's loaders from ../shared/data,
scikit-learn's digits (8 px), scikit-image's photos at 256 and 512 px, a flat grey image (64 and 256 px), and
the PNGs of --images (--sets keeps the sets whose names contain one of its parts). Payload: min(48, capacity)
random bits per image; the third figure of a cell is the share of images whose payload came back exact.
Detection: ours by `detect` (p at or below DETECTION_P for the size); dwtDct has no detector, so it counts as
detected when its decoded bits match the known payload with binomial p <= 1e-6 (in its favour). The
false-positive rate is `detect` on --fpr-images unmarked Fashion-MNIST/MNIST images at 32 px under 10 keys, and on
--fpr-photos unmarked crops of photos (128-320 px, where every search runs, the tile layer's included). Writes
benchmarks/results/NAME.{json,md}.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance
from scipy.stats import binom

from aigckit.config import DataConfig
from aigckit.data import load_dataset
from aigckit.errors import AigcError
from aigckit.provenance.image_watermark import DETECTION_P, capacity, detect, embed, psnr
from timing import machine, write_results

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def encode(image: Image.Image, fmt: str, **options) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return Image.open(io.BytesIO(buffer.getvalue())).convert(image.mode)


def resize(image: Image.Image, scale: float) -> Image.Image:
    w, h = image.size
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)


def crop(image: Image.Image, keep: float) -> Image.Image:
    """A centre crop keeping `keep` of each side."""
    w, h = image.size
    cw, ch = round(w * keep), round(h * keep)
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def shift(image: Image.Image, amount: float) -> Image.Image:
    """Additive brightness change by `amount` of the full range, clipped."""
    return Image.fromarray(np.clip(np.asarray(image, np.float64) + 255 * amount, 0, 255).round().astype(np.uint8))


def noise(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image, np.float64) / 255 + rng.normal(0, 0.02, np.asarray(image).shape)
    return Image.fromarray(np.clip(pixels * 255, 0, 255).round().astype(np.uint8))


def attacks(rng: np.random.Generator) -> dict[str, Callable[[Image.Image], Image.Image]]:
    return {
        "none": lambda im: im,
        "jpeg90": lambda im: encode(im, "JPEG", quality=90),
        "jpeg75": lambda im: encode(im, "JPEG", quality=75),
        "jpeg50": lambda im: encode(im, "JPEG", quality=50),
        "resize0.5": lambda im: resize(resize(im, 0.5), 1.0).resize(im.size, Image.BICUBIC),
        "scale0.75": lambda im: resize(im, 0.75),
        "scale1.25": lambda im: resize(im, 1.25),
        "crop10%": lambda im: crop(im, 0.9 ** 0.5),  # a centre crop removing 10 % of the area
        "crop50%": lambda im: crop(im, 0.5 ** 0.5),  # a centre crop keeping half the area
        "keep10%": lambda im: crop(im, 0.1 ** 0.5),  # a centre crop keeping a tenth (Stable Signature's headline)
        "noise0.02": lambda im: noise(im, rng),
        "bright+10%": lambda im: shift(im, 0.1),
        "bright-10%": lambda im: shift(im, -0.1),
        "gain1.1": lambda im: ImageEnhance.Brightness(im).enhance(1.1),  # PIL's brightness: a multiplicative gain
        "gain0.9": lambda im: ImageEnhance.Brightness(im).enhance(0.9),
        "webp": lambda im: encode(im, "WEBP", quality=80),
    }


def square(pixels: np.ndarray, size: int) -> Image.Image:
    image = Image.fromarray(pixels)
    w, h = image.size
    s = min(w, h)
    return image.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((size, size), Image.LANCZOS)


def dataset_images(name: str, size: int, n: int) -> list[Image.Image]:
    data = load_dataset(DataConfig(name=name, root=str(SHARED / name), image_size=size, download=False), "test")
    pixels = data.pixels[:n].numpy()  # uint8 (n, 1, H, W)
    return [Image.fromarray(p[0]) for p in pixels]


def image_sets(n: int, folder: Path | None) -> dict[str, list[Image.Image]]:
    from skimage import data as photos
    from sklearn.datasets import load_digits

    names = ["astronaut", "camera", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry", "brick"]
    raw = [getattr(photos, name)() for name in names]
    digits = load_digits().images[:n]
    sets = {
        "digits 8 px (sklearn)": [Image.fromarray((d * 255 / 16).round().astype(np.uint8)) for d in digits],
        "MNIST 28 px": dataset_images("mnist", 28, n),
        "Fashion-MNIST 32 px": dataset_images("fashion-mnist", 32, n),
        "Fashion-MNIST 64 px": dataset_images("fashion-mnist", 64, n),
        "flat grey 64 px": [Image.new("L", (64, 64), 128)],
        "photos 256 px": [square(p, 256) for p in raw],
        "photos 512 px": [square(p, 512) for p in raw],
        "flat grey 256 px": [Image.new("L", (256, 256), 128)],
    }
    if folder is not None:
        sets[f"{folder.name} (PNGs)"] = [Image.open(f).convert("RGB" if Image.open(f).mode not in ("L",) else "L")
                                         for f in sorted(folder.glob("*.png"))[:n]]
    return sets


class DwtDct:
    """invisible-watermark's dwtDct with a 48-bit payload, on images upscaled to 256 px where smaller."""

    def __init__(self) -> None:
        from imwatermark import WatermarkDecoder, WatermarkEncoder

        self.encoder_class, self.decoder_class = WatermarkEncoder, WatermarkDecoder

    def embed(self, image: Image.Image, payload: list[int]) -> Image.Image:
        import cv2

        if min(image.size) < 256:
            image = image.resize((256, 256), Image.NEAREST)
        encoder = self.encoder_class()
        encoder.set_watermark("bits", payload)
        bgr = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)
        marked = encoder.encode(bgr, "dwtDct")
        return Image.fromarray(cv2.cvtColor(marked, cv2.COLOR_BGR2RGB)).convert(image.mode)

    def decode(self, image: Image.Image, n_bits: int) -> list[int]:
        import cv2

        decoder = self.decoder_class("bits", n_bits)
        bgr = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)
        try:
            return [int(b) for b in decoder.decode(bgr, "dwtDct")]
        except Exception:  # it refuses images under 256 px (after a crop or a rescale): nothing decoded
            return []


def run_set(images: list[Image.Image], method: str, rng: np.random.Generator, dwt: DwtDct | None) -> dict:
    cells: dict[str, dict[str, list[float]]] = {}
    psnrs, decode_ms = [], []
    for i, image in enumerate(images):
        key = f"bench-{i}".encode()
        n = min(48, capacity(*image.size))
        payload = rng.integers(0, 2, n).tolist()
        if method == "dwtDct":
            reference = image.resize((256, 256), Image.NEAREST) if min(image.size) < 256 else image
            marked = dwt.embed(image, payload)
        else:
            reference, marked = image, embed(image, key, payload, method=method)
        psnrs.append(psnr(reference, marked))
        for name, attack in attacks(rng).items():
            attacked = attack(marked)
            if method == "dwtDct":
                start = time.perf_counter()
                bits = dwt.decode(attacked, n)
                elapsed = time.perf_counter() - start
                right = sum(int(a == b) for a, b in zip(bits, payload))
                detected = bool(bits) and binom.sf(right - 1, n, 0.5) <= 1e-6
            else:
                start = time.perf_counter()
                try:
                    found = detect(attacked, key, n, method=method)
                    bits, detected = found.bits, found.detected
                except AigcError:  # shrunk under 8 px: nothing decoded
                    bits, detected = [], False
                elapsed = time.perf_counter() - start
                right = sum(int(a == b) for a, b in zip(bits, payload))
            if name == "none":
                decode_ms.append(1000 * elapsed)
            cell = cells.setdefault(name, {"bit_accuracy": [], "detected": [], "payload_exact": []})
            cell["bit_accuracy"].append(right / n)
            cell["detected"].append(float(detected))
            cell["payload_exact"].append(float(bits == payload))
    return {"images": len(images), "payload_bits": min(48, capacity(*images[0].size)),
            "psnr_db_min": round(min(psnrs), 2), "psnr_db_median": round(statistics.median(psnrs), 2),
            "decode_ms_median": round(statistics.median(decode_ms), 2),
            "attacks": {name: {k: round(float(np.mean(v)), 4) for k, v in cell.items()} for name, cell in cells.items()}}


def false_positives(count: int) -> dict:
    """`detect` on `count` unmarked 32 px images (Fashion-MNIST and MNIST test, 10 keys)."""
    half = count // 2
    images = dataset_images("fashion-mnist", 32, half) + dataset_images("mnist", 32, count - half)
    return p_value_summary([detect(im, f"key-{i % 10}".encode(), 32).p_value for i, im in enumerate(images)],
                           DETECTION_P[32])


def photo_false_positives(count: int, seed: int) -> dict:
    """`detect` (48 bits) on `count` unmarked square crops, 128 to 320 px at random places, of scikit-image's
    photos, each under its own key: images large enough for every search the detector has, tiles included."""
    from skimage import data as photos

    names = ["astronaut", "camera", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry", "brick",
             "hubble_deep_field", "coins", "page", "text", "grass", "gravel"]
    raw = [np.asarray(getattr(photos, name)()) for name in names]
    rng = np.random.default_rng(seed)
    p_values = []
    for i in range(count):
        picture = raw[i % len(raw)]
        height, width = picture.shape[:2]
        side = int(rng.integers(128, min(height, width, 320) + 1))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        p_values.append(detect(Image.fromarray(picture[top:top + side, left:left + side]),
                               f"photo-key-{i}".encode(), 48).p_value)
    return p_value_summary(p_values, DETECTION_P[64])


def p_value_summary(p_values: list[float], threshold: float) -> dict:
    p = np.array(p_values)
    return {"images": len(p), "threshold_p": threshold, "false_positives": int((p <= threshold).sum()),
            "rate": float((p <= threshold).mean()), "share_p_le_0.01": float((p <= 0.01).mean()),
            "share_p_le_0.05": float((p <= 0.05).mean()), "min_p": float(p.min())}


def false_positive_line(label: str, fpr: dict) -> str:
    return (f"False positives ({label}, p <= {fpr['threshold_p']:g}): {fpr['false_positives']} of {fpr['images']} "
            f"unmarked images ({fpr['rate']:.2%}); share with p <= 0.01: {fpr['share_p_le_0.01']:.2%}, "
            f"p <= 0.05: {fpr['share_p_le_0.05']:.2%}; smallest p {fpr['min_p']:.2g}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20, help="images per dataset set")
    parser.add_argument("--fpr-images", type=int, default=10000)
    parser.add_argument("--fpr-photos", type=int, default=10000)
    parser.add_argument("--images", type=Path, default=None, help="a folder of PNGs (e.g. a run's samples)")
    parser.add_argument("--methods", default="stdm,ss,iss,dwtDct")
    parser.add_argument("--sets", default=None, help="comma-separated parts of set names to keep, e.g. '64 px'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="image_watermark", help="results file name under benchmarks/results")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    methods = args.methods.split(",")
    dwt = DwtDct() if "dwtDct" in methods else None
    sets = image_sets(args.n, args.images)
    if args.sets:
        sets = {name: images for name, images in sets.items() if any(part in name for part in args.sets.split(","))}
    results: dict = {"machine": machine(), "n": args.n, "sets": {}}
    names = list(attacks(rng))
    lines = ["| images | method | bits | PSNR dB (min) | decode ms | " + " | ".join(names) + " |",
             "|---|---|---|---|---|" + "---|" * len(names)]
    for set_name, images in sets.items():
        for method in methods:
            start = time.perf_counter()
            row = run_set(images, method, rng, dwt)
            results["sets"].setdefault(set_name, {})[method] = row
            cells = [f"{row['attacks'][a]['bit_accuracy']:.2f} / {row['attacks'][a]['detected']:.0%} / "
                     f"{row['attacks'][a]['payload_exact']:.0%}" for a in names]
            lines.append(f"| {set_name} ({row['images']}) | {method} | {row['payload_bits']} | "
                         f"{row['psnr_db_median']:.1f} ({row['psnr_db_min']:.1f}) | {row['decode_ms_median']:.1f} | "
                         + " | ".join(cells) + " |")
            print(lines[-1], f"[{time.perf_counter() - start:.0f} s]", flush=True)
    lines.append("")
    lines.append("Cells: bit accuracy / detection rate / payload exact. dwtDct: images under 256 px upscaled to 256 "
                 "(nearest) for it.")
    if args.fpr_images:
        results["false_positive_rate"] = fpr = false_positives(args.fpr_images)
        lines.append(false_positive_line("ours, 32 px digits and clothes, 10 keys", fpr))
    if args.fpr_photos:
        results["false_positive_rate_photos"] = fpr = photo_false_positives(args.fpr_photos, args.seed)
        lines.append(false_positive_line("ours, 128-320 px crops of 14 photos, a key each", fpr))
    lines.append(f"Machine: {results['machine']}.")
    write_results(args.name, results, lines)


if __name__ == "__main__":
    main()
