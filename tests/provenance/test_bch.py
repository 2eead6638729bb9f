"""The watermark payload's error-correcting code: BCH(63, 51) shortened to 60 bits corrects any 2 flipped bits."""

import itertools
import random

import pytest

from aigckit.provenance import bch


def gf64_minimal_polynomial(power: int) -> int:
    """The minimal polynomial over GF(2) of alpha^power in GF(2^6) built on x^6 + x + 1, as an int (bit i: x^i):
    the product of (x - beta) over the conjugates beta = alpha^(power * 2^i), an independent derivation."""
    exp = [1]
    for _ in range(62):
        value = exp[-1] << 1
        exp.append(value ^ 0b1000011 if value & 0b1000000 else value)
    log = {value: i for i, value in enumerate(exp)}

    def times(a: int, b: int) -> int:
        return 0 if a == 0 or b == 0 else exp[(log[a] + log[b]) % 63]

    coset = sorted({power * 2 ** i % 63 for i in range(6)})
    poly = [1]  # coefficients in GF(64), lowest degree first
    for k in coset:  # poly *= (x + alpha^k)
        shifted = [0] + poly
        scaled = [times(c, exp[k]) for c in poly] + [0]
        poly = [a ^ b for a, b in zip(shifted, scaled)]
    assert all(c in (0, 1) for c in poly)  # the product of a whole coset has binary coefficients
    return sum(c << i for i, c in enumerate(poly))


def times_gf2(a: int, b: int) -> int:
    product = 0
    while b:
        if b & 1:
            product ^= a
        a, b = a << 1, b >> 1
    return product


def test_the_generator_is_the_product_of_the_minimal_polynomials_of_alpha_and_alpha_cubed():
    assert times_gf2(gf64_minimal_polynomial(1), gf64_minimal_polynomial(3)) == bch._GENERATOR


def test_every_error_pattern_of_up_to_two_bits_has_its_own_syndrome():
    # distinct syndromes for all 1 + 60 + 1770 patterns: no two codewords lie within 4 bits (minimum distance 5)
    assert len(bch._corrections()) == 1 + bch.CODE_BITS + bch.CODE_BITS * (bch.CODE_BITS - 1) // 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_one_or_two_flipped_bits_are_corrected(seed):
    rng = random.Random(seed)
    message = [rng.randint(0, 1) for _ in range(bch.MESSAGE_BITS)]
    word = bch.encode(message)
    assert word[:bch.MESSAGE_BITS] == message and bch.decode(word) == (message, 0)
    for flips in itertools.chain(itertools.combinations(range(bch.CODE_BITS), 1),
                                 itertools.combinations(range(bch.CODE_BITS), 2)):
        received = [bit ^ (i in flips) for i, bit in enumerate(word)]
        assert bch.decode(received) == (message, len(flips)), flips


def test_three_flipped_bits_are_never_read_as_the_sent_message_and_mostly_flagged():
    rng = random.Random(3)
    message = [rng.randint(0, 1) for _ in range(bch.MESSAGE_BITS)]
    word = bch.encode(message)
    results = []
    for _ in range(500):
        flips = set(rng.sample(range(bch.CODE_BITS), 3))
        results.append(bch.decode([bit ^ (i in flips) for i, bit in enumerate(word)]))
    assert all(result is None or result[0] != message for result in results)
    flagged = sum(result is None for result in results) / len(results)
    assert 0.4 < flagged < 0.8  # 2,265 of the 4,096 syndromes belong to no pattern of 2 bits or fewer: 55 %


def test_a_word_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="expected 60 bits"):
        bch.decode([0] * 48)
