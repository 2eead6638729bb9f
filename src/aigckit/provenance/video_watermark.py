"""The image watermark carried by a clip: every frame marked with the same payload, the frames' votes combined.

Each frame is marked as an image is (image_watermark.embed), at its own PSNR. The detector reads each frame's
projections on every grid the clip could have been marked on, and combines the frames per slot by the circular
mean of their lattice phases: a projection's position in its quantizer, in half steps h, decodes as bit
round(h) mod 2, so the phase pi * h points to 0 for bit 0 and to pi for bit 1; the frames' unit phasors summed
point the way most frames agree, weighted by how near each frame is to a lattice point. A frame an encoder
blurred, or a cut between two frames, then costs a vote, not the verdict. The combined projections decode as one
image's do; they depend on the frames alone, never on the key's reference bits, so in an unmarked clip the
reference bits decoded right are Binomial(n, 1/2) as for an image, and the p-value stays exact (Bonferroni over
the grids tried, three times). Where no grid finds the mark as the frames are, each frame goes through the image
detector's gain and clipping search and its resampling-filter search (image_watermark_sync), and the searched
frames are combined the same way; there is no crop or tile search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

from ..errors import AigcError
from ..video import frame_image
from .image_watermark import (CAPACITY, DETECTION_P, GRIDS, WatermarkDetection, _affine, _grid_for, _layout,
                              _Layout, _lowpass, _luminance, _projections, _step, _verdict, embed)

__all__ = ["embed_frames", "detect_frames"]


def _images(frames: np.ndarray) -> list[Image.Image]:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] not in (1, 3) or len(frames) == 0:
        raise AigcError(f"a clip to watermark is uint8 frames (T, H, W, C) with C 1 or 3 and T >= 1, got "
                        f"{frames.dtype} {tuple(frames.shape)}; see aigckit.video.as_frames")
    return [frame_image(frame) for frame in frames]


def embed_frames(frames: np.ndarray, key: bytes, payload: Sequence[int]) -> np.ndarray:
    """The clip (uint8 (T, H, W, C)) with `payload` embedded in every frame under `key`; same shape."""
    marked = [np.asarray(embed(image, key, payload)) for image in _images(frames)]
    return np.stack(marked).reshape(frames.shape)


def detect_frames(frames: np.ndarray, key: bytes, n_bits: Mapping[int, int], *,
                  search: bool = True) -> WatermarkDetection:
    """Look for the watermark of `key` in a clip (uint8 (T, H, W, C)); `n_bits` maps each grid the clip may have
    been marked on to the payload length it carries there (as image_watermark.detect takes it). search=False
    reads the frames as they are: one hypothesis per grid, no gain search."""
    images = _images(frames)
    height, width = frames.shape[1:3]
    side, key = min(height, width), bytes(key)
    layouts = [_layout(key, grid) for grid in GRIDS
               if grid <= 2 * side and grid in n_bits and n_bits[grid] <= CAPACITY[grid]]
    if not layouts:
        raise AigcError(f"{width}x{height} frames cannot carry the payload lengths {dict(n_bits)}; "
                        f"give the lengths used at embedding")
    lumas = [_luminance(np.asarray(image, dtype=np.float64)) for image in images]
    hypotheses = (3 if search else 1) * len(layouts)  # each grid as it is, then under two searches: fixed
    threshold = DETECTION_P[_grid_for(side)]
    tries = [_verdict(_combined([_projections(luma, layout) for luma in lumas], layout), layout, "stdm",
                      n_bits[layout.grid]) for layout in layouts]
    if search and min(t[0] for t in tries) * hypotheses > threshold:  # a gain, contrast or resampling: searched
        for change in (_affine, _lowpass):
            tries += [_verdict(_combined([change(luma, layout) for luma in lumas], layout), layout, "stdm",
                               n_bits[layout.grid]) for layout in layouts]
    best = min(tries, key=lambda t: (t[0], -t[1]))
    p_value = float(min(1.0, best[0] * hypotheses))
    return WatermarkDetection(bits=best[2].tolist(), bit_accuracy=float(best[3]), p_value=p_value,
                              detected=p_value <= threshold)


def _combined(projections: list[np.ndarray], layout: _Layout) -> np.ndarray:
    """One projection vector (slots,) whose lattice phase is the circular mean of the frames' (T x (slots,))."""
    step = _step(layout.grid)
    phase = np.pi * 2 * (np.stack(projections) / step - layout.dither)  # pi * (position in half steps)
    mean = np.angle(np.exp(1j * phase).sum(axis=0))  # per slot, in (-pi, pi]
    return step * (mean / (2 * np.pi) + layout.dither)
