"""Re-synchronisation hypotheses for the image watermark's detector: gain and offset changes, and crops.

The watermark's code lives on lattices of the projections of a canonical grid's low-frequency DCT, a few dozen
quantizer steps from zero on a photo. Any change that scales those projections by more than about 1 % (a gain,
a contrast change) or moves the grid's content by a fraction of a pixel (a crop, which changes the grid's scale
and origin) moves them by more than a quarter step. The detector therefore re-creates, for each hypothesis of
what happened, the projections the image had when it was marked, and picks the hypothesis whose projections lie
closest to the lattices (`lattice_fit`, which uses the keyed dithers but never the reference bits; hence the
reference bits decoded there are still Binomial(n, 1/2) in an unmarked image and the p-value stays exact).

- Affine changes y = clip(g x + b) (PIL's brightness is a gain, its contrast a gain plus an offset, a brightness
  offset an offset): the offset moves only DC, which carries nothing, except where it clips. Pixels at 0 or 255
  are given back a value beyond the range (the clipped black background of a digit had one value, below 0), and
  the gain is divided out; projections are linear in the image, so every (g, high, low) hypothesis is a
  combination of three projection vectors, searched by coordinate ascent.
- A darkening y = clip(x - b) on a dark image (an additive brightness change of -10 %): the pixels it took below 0
  lose what they held, the host's dark edges as well as the mark, and one value for them all (the affine search)
  is far from what they had. The detector refills them with the smoothest continuation of the pixels around them
  (least squared Laplacian; the object's dark edges run on down to the background), clamped to what they could
  have held (between -b and 0), for b of 5 to 60 grey levels, on the 64 grid.
- Resampling (halving and back, a rescale by 0.75): the resizer's low-pass filter scales each DCT coefficient
  (u, v) of the grid by about h(u) h(v), down to 0.8 at the band's edge, and the host's large coefficients,
  scaled by less than one, move the projections by whole steps. The detector divides the coefficients by
  h(u) = 1 - a (u/K)^2 - b (u/K)^4 for a grid of (a, b) (K: the band's edge), which covers PIL's bicubic halving
  and 0.75 rescale (measured transfers) and milder filters.
- Crops of a square image that keep at least `CROP_KEEP` of its area, without a resize afterwards: the image is
  put back on a canvas of every side and position it could have been cut from, the missing border filled by
  repeating the edge (exact for the flat or black borders of generated digits and clothes, not for a photo),
  then resized to the canvas's grid like the embedder did. A half-area crop of a photo is out of reach of any
  such search: the missing half of the host moves every projection by many steps.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

__all__ = ["GAINS", "CROP_KEEP", "CROP_SEARCH_MAX_SIDE", "lattice_fit", "affine_search", "lowpass_search",
           "darkening_search", "crop_hypotheses", "canvas"]

GAINS = (0.75, 1.33)  # range of gains (and contrast factors) searched
CROP_KEEP = 0.8  # smallest share of the area a crop may keep and still be searched for
CROP_SEARCH_MAX_SIDE = 96  # larger images are not searched for crops (the hypotheses grow as the side squared)
_GAIN_STEPS = 1200  # log-spaced: 0.05 % apart, a tenth of a step on the largest projections of a photo
_HIGH = np.arange(255.0, 320.0, 0.5)  # values a pixel clipped at 255 may have had
_LOW = np.arange(-60.0, 0.5, 0.5)  # values a pixel clipped at 0 may have had
_LOWPASS = np.linspace(0.0, 0.3, 13)  # values of a and of b in h(u) = 1 - a (u/K)^2 - b (u/K)^4
_LEAST_H = 0.5  # h below this (far beyond the band, where the basis has little weight) is not divided out further
_DARKENINGS = np.arange(5.0, 61.0, 5.0)  # grey levels a darkening may have taken off, clipping the darkest at 0


def lattice_fit(p: np.ndarray, step: float, dither: np.ndarray) -> np.ndarray:
    """Mean over slots of cos(4 pi (p / step - dither)) for projections (..., slots): 1 when every projection lies
    on its lattice (whatever its bit), about 0 for projections unrelated to the lattices."""
    return np.cos(4 * np.pi * (p / step - dither)).mean(axis=-1)


def affine_search(linear: np.ndarray, high: np.ndarray, low: np.ndarray, step: float,
                  dither: np.ndarray) -> np.ndarray:
    """The projections (slots,) of the hypothesis (gain, high, low) that fits the lattices best, given the
    projections of the unclipped pixels (`linear`), of the mask of pixels at 255 (`high`) and at 0 (`low`)."""
    gains = np.exp(np.linspace(math.log(GAINS[0]), math.log(GAINS[1]), _GAIN_STEPS))
    top, bottom, gain = 255.0, 0.0, 1.0
    for _ in range(3):  # coordinate ascent: the gain, then the clipped values
        base = linear + top * high + bottom * low
        gain = gains[np.argmax(lattice_fit(base[None] / gains[:, None], step, dither))]
        if high.any():
            top = _HIGH[np.argmax(lattice_fit((linear + _HIGH[:, None] * high + bottom * low) / gain, step, dither))]
        if low.any():
            bottom = _LOW[np.argmax(lattice_fit((linear + top * high + _LOW[:, None] * low) / gain, step, dither))]
    return (linear + top * high + bottom * low) / gain


def lowpass_search(coefficients: np.ndarray, basis: np.ndarray, band: int, step: float,
                   dither: np.ndarray) -> np.ndarray:
    """The projections (slots,) of the low-pass hypothesis that fits the lattices best, given the grid's DCT
    coefficients (N, N) and the slots' basis in the DCT domain (slots, N, N)."""
    a, b = (values.ravel() for values in np.meshgrid(_LOWPASS, _LOWPASS))
    u = np.arange(coefficients.shape[0]) / band
    h = np.maximum(1 - a[:, None] * u ** 2 - b[:, None] * u ** 4, _LEAST_H)  # (hypotheses, N)
    compensated = coefficients / (h[:, :, None] * h[:, None, :])
    p = compensated.reshape(len(a), -1) @ basis.reshape(len(basis), -1).T  # (hypotheses, slots)
    return p[np.argmax(lattice_fit(p, step, dither))]


@lru_cache(maxsize=4)
def _laplacian(height: int, width: int) -> sparse.csr_matrix:
    """The graph Laplacian of an (height, width) pixel grid, 4-neighbours, as a sparse (HW, HW) matrix."""
    index = np.arange(height * width).reshape(height, width)
    pairs = [(index[:, :-1], index[:, 1:]), (index[:-1, :], index[1:, :])]
    rows = np.concatenate([np.concatenate([a.ravel(), b.ravel()]) for a, b in pairs])
    cols = np.concatenate([np.concatenate([b.ravel(), a.ravel()]) for a, b in pairs])
    adjacency = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(height * width,) * 2)
    return (adjacency - sparse.diags(np.asarray(adjacency.sum(axis=1)).ravel())).tocsr()


def darkening_search(plane: np.ndarray, basis: np.ndarray, step: float, dither: np.ndarray) -> np.ndarray | None:
    """The projections (slots,) of the darkening hypothesis that fits the lattices best, given the grid plane; None
    where no pixel is at 0 (or every one is)."""
    clipped = (plane <= 0.5).ravel()
    if not clipped.any() or clipped.all():
        return None
    laplacian = _laplacian(*plane.shape)
    free, fixed = laplacian[:, clipped], laplacian[:, ~clipped]
    values = plane.ravel()
    # the smoothest continuation of the unclipped pixels into the clipped ones: least squared Laplacian
    smooth = splu((free.T @ free).tocsc()).solve(-(free.T @ (fixed @ values[~clipped])))
    refilled = np.repeat(values[None], len(_DARKENINGS), axis=0)
    refilled[:, clipped] = np.clip(smooth[None], -_DARKENINGS[:, None], 0)  # a pixel lost at most the darkening
    p = refilled @ basis.T  # (hypotheses, slots)
    return p[np.argmax(lattice_fit(p, step, dither))]


def crop_hypotheses(height: int, width: int) -> list[tuple[int, int, int]]:
    """(side, top, left) of every square canvas the image could have been cut from keeping >= CROP_KEEP of it."""
    hypotheses = []
    largest = max(height, width)
    for side in range(largest, math.floor(math.sqrt(height * width / CROP_KEEP)) + 1):
        hypotheses += [(side, top, left) for top in range(side - height + 1) for left in range(side - width + 1)]
    return hypotheses


def canvas(plane: np.ndarray, side: int, top: int, left: int) -> np.ndarray:
    """The plane put back at (top, left) on a side x side canvas, its edges repeated into the missing border."""
    height, width = plane.shape
    return np.pad(plane, ((top, side - height - top), (left, side - width - left)), mode="edge")
