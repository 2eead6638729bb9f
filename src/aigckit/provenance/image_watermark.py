"""An invisible, keyed image watermark: dither modulation of spread projections of the low-frequency DCT.

The luminance of an image is resized to a canonical N x N grid (N = 64, 32, 16 or 8: the largest that fits the
image's shorter side). The DCT coefficients (u, v) with u, v < K (DC excluded; K = 16 at N = 64, 8 below) are dealt
by a keyed permutation to slots, one per code bit; each slot's coefficients get a keyed +/-1 chip and form a unit
vector w_j. The code bits are the payload, keyed filler bits where the payload is shorter than the capacity, and
keyed reference bits the detector knows. Each projection p_j = <D, w_j> is quantized onto the lattice of its bit
(spread-transform dither modulation, Chen and Wornell 2001), so the image's own content costs nothing: the change
per slot is at most half a step whatever the host, and the step spends exactly the energy PSNR_TARGET allows. The
change is made on the grid, brought back to the image's resolution, added to every channel (luminance only), then
measured again and corrected twice (rounding, clipping and resampling lose a little). A flat image works as well
as any, as the embedder never depends on the host being textured.

On the 64 grid the slots' vectors are windowed so that the outer 4 grid pixels carry nothing (a crop removing up
to a tenth of the image then removes no part of the mark), freed from DC, and orthonormalised (symmetric, so each
stays close to its DCT pattern); the embedder's change is the least-energy one that reaches the lattice.

Detection resizes any input to the grid(s) it could have been marked on, so resizing, rescaling, JPEG, WebP, noise
and an additive brightness change (DC only) leave the projections within a quarter step. The p-value is exact:
reference bits come from the key independently of the chips and dithers, so in an unmarked image the number of
them decoded right is Binomial(n, 1/2) whatever the image. Where this fast path finds nothing, the detector
searches (image_watermark_sync) gains and contrast changes (with the values clipped pixels had), the low-pass
filter of a resampling (halving and back, a 0.75 rescale), a darkening whose pixels clipped at 0 are refilled
(the 64 grid), and for images up to 96 px crops keeping >= 80 % of a square image; each search picks its
hypothesis by how well the projections fit the lattices, never by the reference bits, so the bits decoded there
keep the exact null. The p-value is the best
hypothesis's times the number of (grid, stage) hypotheses the image's size allows (Bonferroni):
p = min(1, H * P(Bin(n, 1/2) >= k)).

Why a search, and not gain-invariant quantisation (rational dither modulation): a norm of the host's band is 10
to 100 times the mark on a photo and zero on a flat image, so a step proportional to it either spends far more
than the PSNR allows or nothing; a gain search over 1,200 hypotheses costs 3 ms and keeps the fixed step.

Images of 128 px and more on their shorter side carry a second layer with the same payload
(image_watermark_tiles): a keyed chip pattern tiled at the pixels' own scale, at 48 dB alone, which the detector
finds after a crop at any offset (half the area of a photo, or a tenth); the detector tries it as one more
hypothesis on images from 64 px.

Not survived (measured, benchmarks/results/image_watermark{,_64px}.md): crops of images under 128 px that are not
flat at their border (photos; the crop search re-creates the border by repeating the edge), a crop followed by a
resize; brightness -10 % on about half of the dark-background images under 128 px (the clipped background and the
host's dark pixels are lost, not only the mark; the darkening search's refilling finds the other half), and +10 %
or a gain of 1.1 on the 1 image in 8 of Fashion-MNIST whose bright parts, 15-60 % of it, clip.

Why this method (benchmarks/image_watermark.py; the same band, slots and PSNR for all three): plain additive
spread spectrum ("ss") is swamped by the host's own low-frequency energy, which at these frequencies is 10 to 100
times a 42 dB mark, and decodes barely above chance; host-cancelling spread spectrum ("iss", Malvar and Florencio
2003) would need that energy to cancel the host and lands at 21 to 26 dB on photos; dither modulation decodes
every bit at 41 dB and keeps them through JPEG 50, halving and WebP. invisible-watermark's dwtDct (what diffusers
puts on SDXL images) refuses images under 256 px and decodes nothing on a flat image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy.fft import dctn
from scipy.stats import binom

from ..errors import AigcError
from . import image_watermark_sync as sync
from . import image_watermark_tiles as tiles

__all__ = ["GRIDS", "CAPACITY", "REFERENCE_BITS", "DETECTION_P", "PSNR_TARGET", "WatermarkDetection",
           "capacity", "embed", "detect", "detection_threshold", "psnr"]

GRIDS = (64, 32, 16, 8)  # canonical grid sides, largest first; an image uses the largest <= its shorter side
CAPACITY = {64: 64, 32: 32, 16: 8, 8: 4}  # payload bits per grid
REFERENCE_BITS = {64: 48, 32: 24, 16: 24, 8: 16}  # keyed bits the detector knows, per grid
BAND = {64: 16, 32: 8, 16: 8, 8: 8}  # K: the band is the DCT coefficients (u, v) with u, v < K, DC excluded
# p-value at or below which `detect` says detected, by the grid of the image it is given (its shorter side)
DETECTION_P = {64: 1e-6, 32: 1e-6, 16: 1e-4, 8: 1e-3}
CROP_GRID = 64  # the grid whose images are searched for crops, and whose border is left unmarked for it
WINDOW = (4, 6)  # grid pixels from the edge: unmarked up to the first, fully marked from the second
PSNR_TARGET = 42.0  # dB the embedder aims at before rounding; measured results are 40-42 dB
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class WatermarkDetection:
    """What `detect` found in an image.

    Attributes:
        bits: the decoded payload (0/1).
        bit_accuracy: share of the keyed reference bits decoded right, an estimate of the payload's bit accuracy
            (they travel interleaved with it); None where nothing was decoded.
        p_value: probability of a statistic at least this strong in an unmarked image (exact per hypothesis,
            Bonferroni over the hypotheses searched).
        detected: p_value <= the threshold for this image size (`detection_threshold`).
    """

    bits: list[int]
    bit_accuracy: float | None
    p_value: float
    detected: bool


@dataclass(frozen=True)
class _Layout:
    """The keyed arrangement of one grid: band coefficients, their slots and chips, and the known bits."""

    grid: int
    band: int  # K: coefficients with u, v < K
    u: np.ndarray  # (M,) row index of each band coefficient
    v: np.ndarray  # (M,) column index
    slot: np.ndarray  # (M,) code slot of each coefficient
    weight: np.ndarray  # (M,) chip / sqrt(coefficients in the slot): each slot's weights form a unit vector
    reference: np.ndarray  # (REFERENCE_BITS,) 0/1, the keyed reference bits
    filler: np.ndarray  # (CAPACITY,) 0/1, keyed bits for payload slots a shorter payload leaves free
    dither: np.ndarray  # (slots,) in [0, 1): keyed offset of each slot's quantizer, in steps
    basis: np.ndarray  # (slots, N * N): p = basis @ grid.ravel() are the projections of a grid plane
    lift: np.ndarray  # (N * N, slots): the least-energy grid change moving the projections by d is lift @ d
    basis_dct: np.ndarray  # (slots, N, N): the basis in the DCT domain (the orthonormal DCT keeps inner products)

    @property
    def slots(self) -> int:
        return CAPACITY[self.grid] + REFERENCE_BITS[self.grid]


def _rng(key: bytes, tag: str, grid: int) -> np.random.Generator:
    digest = hashlib.sha256(b"aigckit-image-watermark/v1\0" + tag.encode() + b"\0" + str(grid).encode() + b"\0" + key)
    return np.random.default_rng(int.from_bytes(digest.digest(), "big"))


@lru_cache(maxsize=64)
def _layout(key: bytes, grid: int) -> _Layout:
    band = BAND[grid]
    u, v = np.meshgrid(np.arange(band), np.arange(band), indexing="ij")
    u, v = u.ravel()[1:], v.ravel()[1:]  # DC excluded: brightness moves only DC
    slots = CAPACITY[grid] + REFERENCE_BITS[grid]
    order = _rng(key, "permutation", grid).permutation(len(u))
    slot = np.empty(len(u), dtype=np.int64)
    slot[order] = np.arange(len(u)) % slots  # round robin over a keyed order: every slot gets M/slots coefficients
    chips = _rng(key, "chips", grid).choice([-1.0, 1.0], size=len(u))
    weight = chips / np.sqrt(np.bincount(slot, minlength=slots)[slot])
    # reference and filler bits come from their own streams: independent of the chips, hence the exact null
    reference = _rng(key, "reference", grid).integers(0, 2, REFERENCE_BITS[grid])
    filler = _rng(key, "filler", grid).integers(0, 2, CAPACITY[grid])
    dither = _rng(key, "dither", grid).random(slots)
    dct = dctn(np.eye(grid), axes=[0], norm="ortho")  # dct[u, x]: the orthonormal DCT-II basis
    basis = np.zeros((slots, grid, grid))
    np.add.at(basis, slot, weight[:, None, None] * dct[u][:, :, None] * dct[v][:, None, :])
    window = _window(grid).ravel()
    basis = basis.reshape(slots, -1) * window
    basis -= np.outer(basis.sum(axis=1) / window.sum(), window)  # blind to a constant, as DCT basis functions are
    values, vectors = np.linalg.eigh(basis @ basis.T)
    basis = (vectors / np.sqrt(values)) @ vectors.T @ basis  # symmetric orthonormalisation: unit, orthogonal rows
    lift = basis.T  # rows orthonormal: the least-energy change for a projection change d is basis^T d
    basis_dct = dctn(basis.reshape(slots, grid, grid), axes=(1, 2), norm="ortho")
    return _Layout(grid, band, u, v, slot, weight, reference, filler, dither, basis, lift, basis_dct)


def _window(grid: int) -> np.ndarray:
    """(N, N) weights of the grid's pixels: on the 64 grid 0 on the outer 4 pixels (what a crop removing up to
    a tenth of the image takes away), rising as a raised cosine to 1 at 6 from the edge; all ones on smaller
    grids, which are not searched for crops (their few coefficients do not spare a border)."""
    if grid < CROP_GRID:
        return np.ones((grid, grid))
    edge = np.minimum(np.arange(grid), np.arange(grid)[::-1]) + 0.5  # distance of each pixel centre to the edge
    ramp = np.clip((edge - WINDOW[0]) / (WINDOW[1] - WINDOW[0]), 0, 1)
    w = 0.5 - 0.5 * np.cos(np.pi * ramp)
    return np.outer(w, w)


def _grid_for(side: int) -> int:
    for grid in GRIDS:
        if side >= grid:
            return grid
    raise AigcError(f"the image is {side} px on its shorter side; the watermark needs at least 8 px")


def capacity(width: int, height: int) -> int:
    """Payload bits an image of this size carries: 64 from 64 px on the shorter side, 32 from 32, 8 from 16, 4
    from 8."""
    return CAPACITY[_grid_for(min(width, height))]


def detection_threshold(width: int, height: int) -> float:
    """The p-value at or below which `detect` reports an image of this size as watermarked."""
    return DETECTION_P[_grid_for(min(width, height))]


def _pixels(image: Image.Image) -> np.ndarray:
    if image.mode not in ("L", "RGB"):
        raise AigcError(f"the watermark takes grey (L) or RGB images, not mode {image.mode}; "
                        f"convert it first, e.g. image.convert('RGB')")
    return np.asarray(image, dtype=np.float64)


def _luminance(pixels: np.ndarray) -> np.ndarray:
    return pixels @ _LUMA if pixels.ndim == 3 else pixels


def _resize(plane: np.ndarray, width: int, height: int, *, smooth: bool = False) -> np.ndarray:
    """A float plane resized with Pillow (antialiased): area average when shrinking, bilinear or bicubic else."""
    if plane.shape == (height, width):
        return plane
    shrink = width <= plane.shape[1] and height <= plane.shape[0]
    method = Image.BICUBIC if shrink or smooth else Image.BILINEAR
    resized = Image.fromarray(plane.astype(np.float32), mode="F").resize((width, height), method)
    return np.asarray(resized, dtype=np.float64)


def _add_luminance(pixels: np.ndarray, change: np.ndarray) -> np.ndarray:
    """Pixels (H, W) or (H, W, 3) with a luminance change (H, W) added to every channel, clipped to 0..255."""
    return np.clip(pixels + (change[..., None] if pixels.ndim == 3 else change), 0, 255)


def _projections(luma: np.ndarray, layout: _Layout) -> np.ndarray:
    """(slots,) projections p_j = <D, w_j> of the luminance's band coefficients D on the grid."""
    return layout.basis @ _resize(luma, layout.grid, layout.grid).ravel()


def _code(layout: _Layout, payload: Sequence[int]) -> np.ndarray:
    """The code bits as +/-1: payload, filler for the payload slots left, reference."""
    cap = CAPACITY[layout.grid]
    bits = np.concatenate([np.asarray(payload, dtype=np.int64), layout.filler[len(payload):cap], layout.reference])
    return 2.0 * bits - 1.0


def _check_payload(payload: Sequence[int], cap: int, width: int, height: int) -> list[int]:
    bits = [int(b) for b in payload]
    if any(b not in (0, 1) for b in bits):
        raise AigcError("the watermark payload must be bits (0 or 1); encode ids as bits first")
    if len(bits) > cap:
        raise AigcError(f"a {width}x{height} image carries {cap} payload bits, not {len(bits)}; "
                        f"shorten the payload or use a larger image")
    return bits


METHODS = ("stdm", "ss", "iss")


def _step(grid: int) -> float:
    """Quantizer step Delta of every slot: its mean squared error Delta^2 / 12 over all slots spends the grid
    DCT energy that PSNR_TARGET allows."""
    budget = grid * grid * 255.0 ** 2 / 10 ** (PSNR_TARGET / 10)
    return float(np.sqrt(12 * budget / (CAPACITY[grid] + REFERENCE_BITS[grid])))


def embed(image: Image.Image, key: bytes, payload: Sequence[int], *, method: str = "stdm") -> Image.Image:
    """The image with `payload` (0/1 bits, at most `capacity(width, height)`) embedded under `key`; same size and
    mode.

    `method` other than "stdm" (plain spread spectrum "ss", host-cancelling "iss") exists for the benchmark's
    comparison; detect with the same method."""
    if method not in METHODS:
        raise AigcError(f"unknown watermark method {method!r}; choose one of {', '.join(METHODS)}")
    pixels = _pixels(image)
    height, width = pixels.shape[:2]
    layout = _layout(bytes(key), _grid_for(min(width, height)))
    bits = _check_payload(payload, CAPACITY[layout.grid], width, height)
    g, step = layout.grid, _step(layout.grid)
    code = _code(layout, bits)  # +/-1
    p = _projections(_luminance(pixels), layout)
    if method == "stdm":
        # dither modulation (Chen and Wornell 2001, https://doi.org/10.1109/18.923725) of each projection: bit b
        # lives on the lattice step * (Z + dither + b / 2); move p to the nearest point of its bit's lattice
        offset = step * (layout.dither + (code > 0) / 2)
        goal = offset + step * np.round((p - offset) / step)
    elif method == "iss":
        goal = code * np.maximum(code * p, step / 2)  # only as far as needed to reach the sign, with a margin
    else:
        goal = p + code * step / np.sqrt(12)  # the same energy, added blind
    marked = pixels
    if method == "stdm" and min(height, width) >= tiles.MIN_SIDE:  # the crop-robust layer first; measured below
        marked = _add_luminance(marked, tiles.pattern(tiles.tiling(bytes(key)), np.asarray(bits), height, width))
        p = _projections(_luminance(np.round(marked)), layout)
    for _ in range(3 if method != "ss" else 1):  # measure what rounding, clipping and resampling left; correct
        marked = _add_luminance(marked, _resize((layout.lift @ (goal - p)).reshape(g, g), width, height, smooth=True))
        p = _projections(_luminance(np.round(marked)), layout)
    return Image.fromarray(np.round(marked).astype(np.uint8), mode=image.mode)


def _decode(p: np.ndarray, layout: _Layout, method: str) -> np.ndarray:
    """0/1 bits from projections (..., slots): the nearer lattice for stdm, the sign otherwise."""
    if method != "stdm":
        return (p > 0).astype(np.int64)
    half = (p / _step(layout.grid) - layout.dither) * 2  # in half steps: even -> bit 0, odd -> bit 1
    return (np.round(half).astype(np.int64) % 2)


def _verdict(p: np.ndarray, layout: _Layout, method: str, length: int) -> tuple[float, int, np.ndarray, float]:
    """(p-value of this one hypothesis, grid, payload bits, share of known bits right) for projections p."""
    known = np.concatenate([layout.filler[length:], layout.reference])  # the bits the detector knows
    decoded = _decode(p, layout, method)
    right = int((decoded[length:] == known).sum())
    return float(binom.sf(right - 1, len(known), 0.5)), layout.grid, decoded[:length], right / len(known)


def _affine(luma: np.ndarray, layout: _Layout) -> np.ndarray:
    """Projections under the best gain/offset hypothesis (see image_watermark_sync)."""
    high, low = (luma >= 254.5).astype(np.float64), (luma <= 0.5).astype(np.float64)
    linear = _projections(luma * (1 - high - low), layout)
    return sync.affine_search(linear, _projections(high, layout), _projections(low, layout),
                              _step(layout.grid), layout.dither)


def _darkening(luma: np.ndarray, layout: _Layout) -> np.ndarray | None:
    """Projections under the best darkening hypothesis (see image_watermark_sync); None with no pixel at 0."""
    plane = _resize(luma, layout.grid, layout.grid)
    return sync.darkening_search(plane, layout.basis, _step(layout.grid), layout.dither)


def _lowpass(luma: np.ndarray, layout: _Layout) -> np.ndarray:
    """Projections under the best resampling-filter hypothesis (see image_watermark_sync)."""
    coefficients = dctn(_resize(luma, layout.grid, layout.grid), norm="ortho")
    return sync.lowpass_search(coefficients, layout.basis_dct, layout.band, _step(layout.grid), layout.dither)


def _crop(luma: np.ndarray, key: bytes, lengths: Mapping[int, int]) -> tuple[np.ndarray, _Layout] | None:
    """Projections and layout under the best crop hypothesis (see image_watermark_sync), None if none applies."""
    best = None
    for side, top, left in sync.crop_hypotheses(*luma.shape):
        grid = _grid_for(side)
        if grid < CROP_GRID or grid not in lengths or lengths[grid] > CAPACITY[grid]:
            continue
        layout = _layout(key, grid)
        p = _projections(sync.canvas(luma, side, top, left), layout)
        fit = float(sync.lattice_fit(p, _step(grid), layout.dither))
        if best is None or fit > best[0]:
            best = (fit, p, layout)
    return None if best is None else best[1:]


def _tiles(luma: np.ndarray, key: bytes, length: int) -> tuple[float, int, np.ndarray, float]:
    """`_verdict` of the tile layer (image_watermark_tiles): the signs of its correlations at the best shift."""
    layout = tiles.tiling(key)
    decoded = (tiles.correlations(luma, layout) > 0).astype(np.int64)
    known = np.concatenate([layout.filler[length:], layout.reference])
    right = int((decoded[length:] == known).sum())
    return float(binom.sf(right - 1, len(known), 0.5)), CROP_GRID, decoded[:length], right / len(known)


def detect(image: Image.Image, key: bytes, n_bits: int | Mapping[int, int] | None = None, *,
           method: str = "stdm") -> WatermarkDetection:
    """Look for the watermark of `key` in `image`; `n_bits` is the payload length used at embedding (None: the
    full capacity; a mapping: the length for each grid the image may have been marked on, as when the embedder
    chose it by the image's size and the image may since have been resized).

    Tries every grid the image could have been marked on (it may since have been halved or doubled); where none
    is detected, searches gains, brightness offsets and contrast (every grid), darkenings that clipped pixels at 0
    (the 64 grid) and small crops (images up to
    `CROP_SEARCH_MAX_SIDE` px) for the hypothesis whose projections fit the lattices best. The p-value is that of
    the best hypothesis times the number of (grid, stage) hypotheses the image's size allows (Bonferroni)."""
    if method not in METHODS:
        raise AigcError(f"unknown watermark method {method!r}; choose one of {', '.join(METHODS)}")
    pixels = _pixels(image)
    height, width = pixels.shape[:2]
    side = min(width, height)
    threshold = DETECTION_P[_grid_for(side)]
    lengths = (dict(n_bits) if isinstance(n_bits, Mapping)
               else {grid: CAPACITY[grid] if n_bits is None else n_bits for grid in GRIDS})
    if any(not 0 <= bits <= max(CAPACITY.values()) for bits in lengths.values()):
        raise AigcError(f"n_bits is {n_bits}; give the payload length used at embedding "
                        f"(0 to {max(CAPACITY.values())})")
    luma, key = _luminance(pixels), bytes(key)
    # a payload longer than a grid's capacity rules that grid out
    layouts = [_layout(key, grid) for grid in GRIDS
               if grid <= 2 * side and grid in lengths and lengths[grid] <= CAPACITY[grid]]
    if not layouts:
        raise AigcError(f"a {width}x{height} image cannot carry {n_bits} payload bits; "
                        f"give the n_bits used at embedding")

    def length(layout: _Layout) -> int:
        return lengths[layout.grid]

    search = method == "stdm"
    crops = search and max(height, width) <= sync.CROP_SEARCH_MAX_SIDE
    tiled = (search and side >= tiles.SEARCH_MIN_SIDE and CROP_GRID in lengths
             and lengths[CROP_GRID] <= tiles.CAPACITY)
    darkened = [layout for layout in layouts if search and layout.grid == CROP_GRID]  # the darkening search's grid
    hypotheses = len(layouts) * (3 if search else 1) + len(darkened) + int(crops) + int(tiled)  # by size: Bonferroni
    tries = [_verdict(_projections(luma, layout), layout, method, length(layout)) for layout in layouts]
    if search and min(t[0] for t in tries) * hypotheses > threshold:
        tries += [_verdict(_affine(luma, layout), layout, method, length(layout)) for layout in layouts]
        tries += [_verdict(_lowpass(luma, layout), layout, method, length(layout)) for layout in layouts]
        refilled = [(p, layout) for layout in darkened if (p := _darkening(luma, layout)) is not None]
        tries += [_verdict(p, layout, method, length(layout)) for p, layout in refilled]
        found = _crop(luma, key, lengths) if crops else None
        if found is not None:
            tries.append(_verdict(found[0], found[1], method, length(found[1])))
        if tiled:
            tries.append(_tiles(luma, key, lengths[CROP_GRID]))
    best = min(tries, key=lambda t: (t[0], -t[1]))
    p_value = float(min(1.0, best[0] * hypotheses))
    return WatermarkDetection(bits=best[2].tolist(), bit_accuracy=float(best[3]), p_value=p_value,
                              detected=p_value <= threshold)


def psnr(reference: Image.Image, image: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB between two images of the same size and mode (inf when equal)."""
    a, b = np.asarray(reference, dtype=np.float64), np.asarray(image, dtype=np.float64)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
