import math

import pytest
import torch
from typer.testing import CliRunner

from aigckit import load
from aigckit.cli import app
from aigckit.config import DataConfig
from aigckit.data.text import read_corpus
from aigckit.models.lm.watermark import Watermark


def test_green_lists_are_a_gamma_fraction_seeded_by_key_and_context():
    mark = Watermark(key=1, gamma=0.25)
    green = mark.green_mask([7], 1000)
    assert green.sum() == 250
    assert torch.equal(green, Watermark(key=1, gamma=0.25).green_mask([3, 7], 1000))  # only the last token counts
    assert not torch.equal(green, mark.green_mask([8], 1000))
    assert not torch.equal(green, Watermark(key=2, gamma=0.25).green_mask([7], 1000))
    assert not torch.equal(green, Watermark(key=1, context_width=2).green_mask([3, 7], 1000))


def test_z_score_counts_green_tokens_against_gamma():
    mark = Watermark(key=5, gamma=0.5)
    ids = [0]
    for _ in range(100):  # always continue with a green token
        ids.append(int(mark.green_mask(ids[-1:], 50).nonzero()[0]))
    score = mark.score(ids, 50, ignore_repeated=False)
    assert score.green == score.scored == 100
    assert score.z == pytest.approx((100 - 50) / math.sqrt(100 * 0.25))
    assert score.p_value == pytest.approx(0.5 * math.erfc(score.z / math.sqrt(2)))


def test_repeated_context_token_pairs_count_once():
    mark = Watermark(key=5)
    assert mark.score([1, 2] * 50, 50).scored == 2  # only 1 -> 2 and 2 -> 1
    assert mark.score([1, 2] * 50, 50, ignore_repeated=False).scored == 99


@pytest.mark.slow
def test_watermarked_generations_are_detected_and_human_text_is_not(trained_char_gpt, tmp_path):
    pipeline = load(trained_char_gpt)
    vocab = pipeline.model.config.vocab_size
    mark = Watermark(key=42, gamma=0.25, delta=2.0)
    marked = pipeline.generate("The ", max_new_tokens=200, seed=0, watermark=mark)
    plain = pipeline.generate("The ", max_new_tokens=200, seed=0)
    human = read_corpus(DataConfig(name="pydoc"))[-2000:-1799]  # held-out validation text, 200 characters
    encode = pipeline.tokenizer.encode
    assert mark.score(encode(marked), vocab).z > 4
    assert abs(mark.score(encode(plain), vocab).z) < 3
    assert abs(mark.score(encode(human), vocab).z) < 3
    assert abs(Watermark(key=43).score(encode(marked), vocab).z) < 3  # another key finds nothing

    (tmp_path / "marked.txt").write_text(marked, encoding="utf-8")
    result = CliRunner().invoke(app, ["watermark", "detect", str(tmp_path / "marked.txt"), "--run",
                                      str(trained_char_gpt), "--key", "42", "--json"])
    assert result.exit_code == 0 and '"watermarked": true' in result.stdout
    generated = CliRunner().invoke(app, ["generate", str(trained_char_gpt), "--prompt", "The ", "--seed", "0",
                                         "--max-new-tokens", "200", "--watermark-key", "42"])
    assert generated.stdout == marked + "\n"
