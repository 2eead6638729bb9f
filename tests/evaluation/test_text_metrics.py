import random

import pytest

from aigckit.evaluation.metrics.text import bleu, distinct_n, repetition_rate, self_bleu


def test_distinct_and_repetition_on_known_sequences():
    assert distinct_n([[1, 2, 3, 4]], 1) == 1.0
    assert distinct_n([[1, 1, 1, 1]], 1) == 0.25
    assert distinct_n([[1, 2, 1, 2]], 2) == pytest.approx(2 / 3)
    assert repetition_rate([[1, 2, 3, 4, 5, 6]], 2) == 0.0
    assert repetition_rate([[7, 7, 7, 7, 7]], 2) == 0.75


def test_bleu_and_self_bleu():
    sentence = list(range(20))
    assert bleu(sentence, [sentence]) == pytest.approx(1.0)
    assert self_bleu([sentence] * 4) == pytest.approx(1.0)
    rng = random.Random(0)
    varied = [[rng.randrange(1000) for _ in range(20)] for _ in range(5)]
    assert self_bleu(varied) < 0.05
