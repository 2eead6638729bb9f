"""The error-correcting code of a 48-bit watermark payload: BCH(63, 51), shortened to 60 bits, corrects any 2.

A watermark bit can flip where an attack (H.264, a resize) leaves a projection near the middle of its quantizer;
one flipped bit of a model id names another model. The code's 12 parity bits fit in the 16 payload slots a 64 px
image has beyond its 48 payload bits. Its generator g(x) = m1(x) m3(x) (the minimal polynomials of alpha and
alpha^3 in GF(2^6) built on x^6 + x + 1; octal 12471, Lin and Costello, Error Control Coding, table of BCH codes)
gives a minimum distance of 5. Shortening by 3 bits keeps it. The decoder looks the syndrome up among those of
the 1,831 error patterns of at most 2 bits. Any other syndrome means 3 or more errors, and the payload is reported
unreadable. A table is the whole decoder at this size; Berlekamp-Massey pays off for longer codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

__all__ = ["MESSAGE_BITS", "CODE_BITS", "CORRECTS", "encode", "decode"]

MESSAGE_BITS = 48
PARITY_BITS = 12
CODE_BITS = MESSAGE_BITS + PARITY_BITS
CORRECTS = 2  # bit errors per codeword
_GENERATOR = 0o12471  # g(x), degree 12


def _remainder(value: int) -> int:
    """value(x) mod g(x) over GF(2), for polynomials as ints (bit i: the coefficient of x^i)."""
    for shift in range(value.bit_length() - PARITY_BITS - 1, -1, -1):
        if value >> (shift + PARITY_BITS) & 1:
            value ^= _GENERATOR << shift
    return value


def _to_int(bits: Sequence[int], length: int) -> int:
    if len(bits) != length or any(bit not in (0, 1) for bit in bits):
        raise ValueError(f"expected {length} bits (0 or 1), got {len(bits)}")
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def _to_bits(value: int, length: int) -> list[int]:
    return [(value >> (length - 1 - i)) & 1 for i in range(length)]


def encode(message: Sequence[int]) -> list[int]:
    """The 60-bit codeword of 48 message bits: the message, then its 12 parity bits (systematic)."""
    shifted = _to_int(message, MESSAGE_BITS) << PARITY_BITS
    return _to_bits(shifted | _remainder(shifted), CODE_BITS)


@lru_cache(maxsize=1)
def _corrections() -> dict[int, int]:
    """Syndrome -> the error pattern of at most CORRECTS bits that has it."""
    single = [_remainder(1 << i) for i in range(CODE_BITS)]
    table = {0: 0}
    for i in range(CODE_BITS):
        table[single[i]] = 1 << i
        for j in range(i):
            table[single[i] ^ single[j]] = (1 << i) | (1 << j)
    return table


def decode(word: Sequence[int]) -> tuple[list[int], int] | None:
    """(the 48 message bits, how many bits were corrected) of a received 60-bit word; None when it has more errors
    than the code corrects (3 or more, as far as its syndrome shows)."""
    value = _to_int(word, CODE_BITS)
    error = _corrections().get(_remainder(value))
    if error is None:
        return None
    return _to_bits((value ^ error) >> PARITY_BITS, MESSAGE_BITS), bin(error).count("1")
