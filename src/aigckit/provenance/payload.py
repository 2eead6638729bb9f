"""What the image watermark carries: a model id (from the checkpoint's sha256) and a generation id (from the seed).

An image of capacity n bits (`image_watermark.capacity`, at most MAX_BITS used) carries the first n // 2 bits of the
checkpoint's sha256 as the model id, then the low n - n // 2 bits of the seed as the generation id, most significant
bit first. A 32-bit payload (32×32 images) holds a 16-bit model id and a 16-bit generation id; 48 bits hold 24 and 24.
Decoded bits give the ids back; they identify a model among the checkpoints one knows (its sha256 prefix matches) and
narrow a seed down to the seeds with the same low bits, which the image's metadata (when intact) names exactly.

A 48-bit payload travels with the 12 parity bits of a BCH code that corrects any 2 flipped bits (`bch`): 60 code
bits, which 64 px images and larger have room for. Shorter payloads fill their images' capacity and go as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import AigcError
from . import bch

__all__ = ["MAX_BITS", "Payload", "payload_bits", "code_length", "payload_length", "encode", "decode", "correct"]

MAX_BITS = 48


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

    @property
    def code_bits(self) -> list[int]:
        """What an image carries: the payload's bits, with their parity bits where the payload has 48."""
        return bch.encode(self.bits) if len(self.bits) == bch.MESSAGE_BITS else self.bits

    def matches_checkpoint(self, sha256: str) -> bool:
        """Whether the model id is the start of this checkpoint's sha256."""
        return self.model_bits > 0 and _sha_prefix(sha256, self.model_bits) == self.model_id

    def matches_seed(self, seed: int) -> bool:
        """Whether the generation id is the low bits of this seed."""
        return self.generation_bits > 0 and seed % (1 << self.generation_bits) == self.generation_id

    def describe(self) -> dict[str, Any]:
        """The ids as hex strings of their width, with the bit counts (what `aigckit detect` prints)."""
        return {"model_id": _hex(self.model_id, self.model_bits), "model_bits": self.model_bits,
                "generation_id": _hex(self.generation_id, self.generation_bits),
                "generation_bits": self.generation_bits}


def payload_bits(width: int, height: int) -> int:
    """Bits of payload an image of this size carries: its watermark capacity, at most MAX_BITS."""
    from .image_watermark import capacity

    return min(capacity(width, height), MAX_BITS)


def code_length(n_bits: int) -> int:
    """Bits an image carries for a payload of `n_bits`: with the parity bits where the payload has 48."""
    return bch.CODE_BITS if n_bits == bch.MESSAGE_BITS else n_bits


def payload_length(n_code_bits: int) -> int:
    """The payload's bits among `n_code_bits` an image carries (the inverse of code_length)."""
    return bch.MESSAGE_BITS if n_code_bits == bch.CODE_BITS else n_code_bits


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


def correct(code_bits: Sequence[int]) -> tuple[list[int], int] | None:
    """(the payload's bits, how many were corrected) of the bits read from an image (a `code_length` long); None
    when more were flipped than the code corrects. Payloads without parity bits come back as they are."""
    if len(code_bits) == bch.CODE_BITS:
        return bch.decode(code_bits)
    return list(code_bits), 0
