"""The image watermark's second layer for large images: a keyed +/-1 pattern tiled over the pixels, found again
after a crop.

The main layer (image_watermark) lives on the low frequencies of the whole image, so it survives compression and
resizing but not losing part of the host: a crop keeping half of a photo moves its projections by many quantizer
steps. This layer is the complement. A 32 x 32 tile of keyed chips, each tile position dealt to one code slot
(payload, filler or reference bit, as in the main layer), is repeated over the image at the pixels' own scale and
added to the luminance with a fixed amplitude (`PSNR` alone). Every tile carries the whole code, so any part of the
image large enough carries it too, at an unknown offset modulo the tile: images are marked from `MIN_SIDE` px and
searched from `SEARCH_MIN_SIDE` (a crop keeping a tenth of a 256 px image is 81 px a side).

Detection: the luminance's high-pass residual (the image minus its Gaussian blur: photos keep most of their energy
below the chips' frequencies), each pixel weighted by the inverse of its neighbourhood's residual energy (textured
regions hide the chips, smooth ones show them), folded modulo the tile (summed over all tiles); then, for every one
of the 32 x 32 circular shifts at once (FFT), the correlation of the fold with each slot's chips. The shift is the
one with the largest sum of |correlation| over the slots, which never looks at the bits; the bits are the signs
there. So the keyed reference bits, drawn independently of the chips, are decoded right with probability 1/2 each in
an unmarked image whatever the shift chosen, and the p-value stays exact (binomial).

Not survived, as designed: resizing (the tile no longer has its period; the main layer covers resizing) and, after
a crop, heavy compression (JPEG below about 75 removes the chips' frequencies).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter, uniform_filter

__all__ = ["TILE", "MIN_SIDE", "SEARCH_MIN_SIDE", "PSNR", "CAPACITY", "REFERENCE_BITS", "Tiling", "tiling", "pattern", "correlations"]

TILE = 32  # pixels per side of the repeated tile
MIN_SIDE = 128  # images at least this large on their shorter side carry the layer (16 tiles and more)
SEARCH_MIN_SIDE = 64  # images this large are searched for it: a crop of a marked image keeping 2 x 2 tiles
PSNR = 48.0  # dB of the layer alone; the main layer's target leaves room for it
CAPACITY = 64  # payload slots (the main layer's 64 grid capacity: the same payload goes into both)
REFERENCE_BITS = 48
_BLUR_SIGMA = 1.0  # px: the residual keeps what a blur this wide removes
_ENERGY_WINDOW = 7  # px: the neighbourhood whose residual energy weights a pixel


@dataclass(frozen=True)
class Tiling:
    """The keyed arrangement of the tile: each position's slot and chip, and the known bits."""

    slot: np.ndarray  # (TILE, TILE) code slot of each tile position
    chip: np.ndarray  # (TILE, TILE) +/-1
    reference: np.ndarray  # (REFERENCE_BITS,) 0/1
    filler: np.ndarray  # (CAPACITY,) 0/1, for payload slots a shorter payload leaves free
    spectra: np.ndarray  # (slots, TILE, TILE) conjugate FFT of each slot's chips (zero off the slot)

    @property
    def slots(self) -> int:
        return CAPACITY + REFERENCE_BITS


def _rng(key: bytes, tag: str) -> np.random.Generator:
    digest = hashlib.sha256(b"aigckit-image-watermark-tiles/v1\0" + tag.encode() + b"\0" + key)
    return np.random.default_rng(int.from_bytes(digest.digest(), "big"))


@lru_cache(maxsize=16)
def tiling(key: bytes) -> Tiling:
    """The tile layer's arrangement under `key`."""
    slots = CAPACITY + REFERENCE_BITS
    slot = np.empty(TILE * TILE, dtype=np.int64)
    slot[_rng(key, "permutation").permutation(TILE * TILE)] = np.arange(TILE * TILE) % slots
    slot = slot.reshape(TILE, TILE)
    chip = _rng(key, "chips").choice([-1.0, 1.0], size=(TILE, TILE))
    reference = _rng(key, "reference").integers(0, 2, REFERENCE_BITS)
    filler = _rng(key, "filler").integers(0, 2, CAPACITY)
    masks = (slot[None] == np.arange(slots)[:, None, None]) * chip[None]
    return Tiling(slot, chip, reference, filler, np.conj(np.fft.fft2(masks)))


def code(layout: Tiling, payload: np.ndarray) -> np.ndarray:
    """(slots,) +/-1: the payload, filler for the payload slots left, the reference bits."""
    bits = np.concatenate([payload.astype(np.int64), layout.filler[len(payload):], layout.reference])
    return 2.0 * bits - 1.0


def pattern(layout: Tiling, payload: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width) luminance change carrying `payload`: the tile of chips times code bits, repeated."""
    amplitude = 255.0 * 10 ** (-PSNR / 20)  # a +/-a pattern has mean squared value a^2
    tile = amplitude * layout.chip * code(layout, payload)[layout.slot]
    reps = (-(-height // TILE), -(-width // TILE))
    return np.tile(tile, reps)[:height, :width]


def correlations(luma: np.ndarray, layout: Tiling) -> np.ndarray:
    """(slots,) each slot's correlation at the circular shift that fits the tile best; the signs are the bits."""
    residual = luma - gaussian_filter(luma, _BLUR_SIGMA, mode="reflect")
    weighted = residual / (uniform_filter(residual ** 2, _ENERGY_WINDOW, mode="reflect") + 1.0)
    height, width = luma.shape
    padded = np.zeros((-(-height // TILE) * TILE, -(-width // TILE) * TILE))
    padded[:height, :width] = weighted
    fold = padded.reshape(padded.shape[0] // TILE, TILE, padded.shape[1] // TILE, TILE).sum(axis=(0, 2))
    # corr[j, s] = sum_q fold[q] * mask_j[q - s] (circular), for every shift s at once
    corr = np.real(np.fft.ifft2(np.fft.fft2(fold)[None] * layout.spectra))
    shift = np.unravel_index(np.argmax(np.abs(corr).sum(axis=0)), (TILE, TILE))
    return corr[:, shift[0], shift[1]]
