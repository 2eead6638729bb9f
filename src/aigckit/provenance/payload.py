"""What the image watermark carries: a model id (from the checkpoint's sha256) and a generation id (from the seed).

An image of capacity n bits (`image_watermark.capacity`, at most MAX_BITS used) carries the first n // 2 bits of the
checkpoint's sha256 as the model id, then the low n - n // 2 bits of the seed as the generation id, most significant
bit first. A 32-bit payload (32×32 images) holds a 16-bit model id and a 16-bit generation id; 48 bits hold 24 and 24.
Decoded bits give the ids back; they identify a model among the checkpoints one knows (its sha256 prefix matches) and
narrow a seed down to the seeds with the same low bits, which the image's metadata (when intact) names exactly.

An attack can flip a bit (H.264 at our MP4's quality flips 1 of 48 under 5 keys in 40 in a 2-step model's noise),
so an id matches a checkpoint or a seed when at most `id_tolerance` of its bits differ: as many as leave an
unrelated id (each bit a fair coin) at most ID_MATCH_P chance of lying that close. That is 2 bits of a 24-bit id;
ids of 16 bits or fewer must match exactly. An error-correcting code was measured instead (BCH, 12 parity bits
in the 64 px grid's free payload slots): it took those slots' known bits from the detector, which then missed
1 photo in 8 cropped to a tenth and 3 of 8 64 px pans through MP4 CRF 25 that it finds without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import AigcError

__all__ = ["MAX_BITS", "ID_MATCH_P", "Payload", "payload_bits", "id_tolerance", "encode", "decode"]

MAX_BITS = 48
ID_MATCH_P = 1e-4  # the most chance an unrelated id may have of lying as close as a match allows


@dataclass(frozen=True)
class Payload:
    """The two ids of a watermark and how many bits each has."""

    model_id: int
    model_bits: int
    generation_id: int
    generation_bits: int

    @property
    def bits(self) -> list[int]:
        """The payload as bits, most significant first: the model id, then the generation id."""
        return _to_bits(self.model_id, self.model_bits) + _to_bits(self.generation_id, self.generation_bits)

    def checkpoint_distance(self, sha256: str) -> int:
        """How many bits of the model id differ from the start of this checkpoint's sha256."""
        return (_sha_prefix(sha256, self.model_bits) ^ self.model_id).bit_count()

    def seed_distance(self, seed: int) -> int:
        """How many bits of the generation id differ from the low bits of this seed."""
        return ((seed % (1 << self.generation_bits)) ^ self.generation_id).bit_count()

    def matches_checkpoint(self, sha256: str) -> bool:
        """Whether the model id is the start of this checkpoint's sha256, up to `id_tolerance` flipped bits."""
        return self.model_bits > 0 and self.checkpoint_distance(sha256) <= id_tolerance(self.model_bits)

    def matches_seed(self, seed: int) -> bool:
        """Whether the generation id is the low bits of this seed, up to `id_tolerance` flipped bits."""
        return self.generation_bits > 0 and self.seed_distance(seed) <= id_tolerance(self.generation_bits)

    def describe(self) -> dict[str, Any]:
        """The ids as hex strings of their width, with the bit counts (what `aigckit detect` prints)."""
        return {"model_id": _hex(self.model_id, self.model_bits), "model_bits": self.model_bits,
                "generation_id": _hex(self.generation_id, self.generation_bits),
                "generation_bits": self.generation_bits}


def payload_bits(width: int, height: int) -> int:
    """Bits of payload an image of this size carries: its watermark capacity, at most MAX_BITS."""
    from .image_watermark import capacity

    return min(capacity(width, height), MAX_BITS)


def id_tolerance(n_bits: int) -> int:
    """Bits an id of `n_bits` may differ by and still match: the most that an unrelated id, n fair coins, comes
    within with probability at most ID_MATCH_P (2 of 24; 0 from 16 bits down)."""
    within, tolerance = 0, -1
    while tolerance < n_bits and within + math.comb(n_bits, tolerance + 1) <= ID_MATCH_P * 2 ** n_bits:
        tolerance += 1
        within += math.comb(n_bits, tolerance)
    return max(tolerance, 0)


def _split(n_bits: int) -> tuple[int, int]:
    return n_bits // 2, n_bits - n_bits // 2


def _to_bits(value: int, width: int) -> list[int]:
    return [(value >> (width - 1 - i)) & 1 for i in range(width)]


def _hex(value: int, width: int) -> str:
    return f"{value:0{max(1, (width + 3) // 4)}x}" if width else ""


def _sha_prefix(sha256: str, n_bits: int) -> int:
    try:
        digest = int(sha256, 16)
    except ValueError:
        raise AigcError(f"{sha256!r} is not a sha256 in hex; give the checkpoint's 64-character digest") from None
    if len(sha256) != 64:
        raise AigcError(f"a checkpoint sha256 has 64 hex characters, got {len(sha256)}")
    return digest >> (256 - n_bits)


def encode(checkpoint_sha256: str | None, seed: int, n_bits: int) -> Payload:
    """The payload of an image made by the checkpoint `checkpoint_sha256` (all zero bits when None: no model, e.g.
    classical inpainting) from `seed`, in `n_bits` bits."""
    if not 0 <= n_bits <= 512:  # the model id takes half, and a sha256 has 256 bits
        raise ValueError(f"n_bits must be in 0..512, got {n_bits}")
    if seed < 0:
        raise ValueError(f"seeds are non-negative, got {seed}")
    model_bits, generation_bits = _split(n_bits)
    model_id = 0 if checkpoint_sha256 is None else _sha_prefix(checkpoint_sha256, model_bits)
    return Payload(model_id, model_bits, seed % (1 << generation_bits), generation_bits)


def decode(bits: Sequence[int]) -> Payload:
    """The ids of decoded bits (their number fixes the split, as `encode` made it)."""
    if any(bit not in (0, 1) for bit in bits):
        raise ValueError("payload bits are 0 or 1")
    model_bits, generation_bits = _split(len(bits))
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return Payload(value >> generation_bits, model_bits, value & ((1 << generation_bits) - 1), generation_bits)
