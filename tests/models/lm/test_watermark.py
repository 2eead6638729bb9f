import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from aigckit import load
from aigckit.cli import app
from aigckit.config import DataConfig
from aigckit.data.text import read_corpus, split_corpus
from aigckit.data.tokenizers import CharTokenizer, tokenizer_sha256
from aigckit.errors import AigcError
from aigckit.models.lm.watermark import Watermark


def test_green_lists_are_a_gamma_fraction_seeded_by_key_and_context():
    mark = Watermark(key=1, vocab_size=1000, gamma=0.25)
    green = mark.green_mask([7])
    assert green.sum() == 250 == mark.green_list_size
    assert torch.equal(green, mark.green_mask([3, 7]))  # only the last token counts
    assert not torch.equal(green, mark.green_mask([8]))
    assert not torch.equal(green, Watermark(key=2, vocab_size=1000).green_mask([7]))
    assert not torch.equal(green, Watermark(key=1, vocab_size=1000, context_width=2).green_mask([3, 7]))
    # the same key over another vocabulary draws other lists: a detector must use the generator's V
    assert not torch.equal(green[:900], Watermark(key=1, vocab_size=900).green_mask([7]))


def test_z_score_counts_green_tokens_against_the_effective_gamma():
    mark = Watermark(key=5, vocab_size=50, gamma=0.5)
    ids = [0]
    for _ in range(100):  # always continue with a green token
        ids.append(int(mark.green_mask(ids[-1:]).nonzero()[0]))
    score = mark.score(ids, ignore_repeated=False)
    assert score.green == score.scored == 100
    assert score.z == pytest.approx((100 - 50) / math.sqrt(100 * 0.25))
    assert score.p_value == pytest.approx(0.5 * math.erfc(score.z / math.sqrt(2)))

    small = Watermark(key=5, vocab_size=10, gamma=0.25)  # 2.5 green ids cannot be: the lists hold 2
    assert (small.green_list_size, small.effective_gamma) == (2, 0.2)
    generator = torch.Generator().manual_seed(0)
    texts = [torch.randint(0, 10, (400,), generator=generator).tolist() for _ in range(100)]
    z = np.array([small.score(t, ignore_repeated=False).z for t in texts])
    # uniform random ids land on green 20 % of the time: centred on the effective gamma, the z-scores are
    # standard normal; against the 25 % asked for they would sit near -2.3
    assert abs(z.mean()) < 0.3 and 0.7 < z.std() < 1.3, (z.mean(), z.std())
    assert small.score(texts[0]).expected_fraction == 0.2


def test_repeated_context_token_pairs_count_once():
    mark = Watermark(key=5, vocab_size=50)
    assert mark.score([1, 2] * 50).scored == 2  # only 1 -> 2 and 2 -> 1
    assert mark.score([1, 2] * 50, ignore_repeated=False).scored == 99


def test_key_material_is_stored_whole_and_edits_are_refused(tmp_path):
    mark = Watermark(key=42, vocab_size=301, gamma=0.25, delta=3.0, context_width=2, tokenizer_sha256="ab" * 32)
    mark.save(tmp_path / "key.json")
    fields = json.loads((tmp_path / "key.json").read_text())
    assert fields["vocab_size"] == 301 and fields["green_list_size"] == 75
    assert fields["effective_gamma"] == 75 / 301 and fields["gamma"] == 0.25
    assert Watermark.load(tmp_path / "key.json") == mark
    (tmp_path / "edited.json").write_text(json.dumps({**fields, "vocab_size": 300}))
    with pytest.raises(AigcError, match="do not follow from gamma"):
        Watermark.load(tmp_path / "edited.json")
    (tmp_path / "foreign.json").write_text(json.dumps({"key": 42}))
    with pytest.raises(AigcError, match="not an aigckit text-watermark key"):
        Watermark.load(tmp_path / "foreign.json")


@pytest.mark.parametrize("fields, message", [
    ({"gamma": 0.0}, "gamma"), ({"gamma": 1.0}, "gamma"), ({"gamma": float("nan")}, "gamma"),
    ({"gamma": 0.99, "vocab_size": 10}, "all 10 tokens on the green list"), ({"delta": -1.0}, "delta"),
    ({"delta": float("inf")}, "delta"), ({"context_width": 0}, "context width"), ({"key": -1}, "key"),
    ({"vocab_size": 1}, "vocab_size"),
])
def test_impossible_key_material_is_refused_in_one_line(fields, message):
    with pytest.raises(AigcError, match=message):
        Watermark(**{"key": 1, "vocab_size": 100, **fields})


def test_a_text_outside_the_keys_vocabulary_is_refused():
    mark = Watermark(key=1, vocab_size=50)
    with pytest.raises(AigcError, match="outside the key's vocabulary of 50"):
        mark.score([1, 2, 60, 3])
    with pytest.raises(AigcError, match="needs more than 1"):
        mark.score([4])


def test_false_positive_rate_of_the_detector_on_unwatermarked_text_is_below_one_percent():
    """The null distribution: 300 windows of held-out human text and 200 samples of a bigram model trained on
    the training text (what a context-width-1 green list can correlate with), five keys in turn."""
    train, val = split_corpus(read_corpus(DataConfig(name="pydoc")), 0.1)
    tokenizer = CharTokenizer.train(train)
    vocab, sha = tokenizer.vocab_size, tokenizer_sha256(tokenizer)
    ids = np.asarray(tokenizer.encode(train))
    counts = np.ones((vocab, vocab))  # add-one smoothed bigram counts
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    transitions = torch.from_numpy(counts / counts.sum(1, keepdims=True))
    generator = torch.Generator().manual_seed(0)
    tokens = [torch.zeros(200, dtype=torch.long)]
    for _ in range(150):
        tokens.append(torch.multinomial(transitions[tokens[-1]], 1, generator=generator).squeeze(1))
    generated = torch.stack(tokens, 1).tolist()
    held_out = tokenizer.encode(val)
    human = [held_out[i:i + 150] for i in range(0, 300 * 150, 150)]
    z = np.array([Watermark(key=40 + i % 5, vocab_size=vocab, tokenizer_sha256=sha).score(text).z
                  for i, text in enumerate(human + generated)])
    assert len(z) == 500 and (z > 4).mean() <= 0.01
    assert abs(z.mean()) < 0.3 and 0.7 < z.std() < 1.3, (z.mean(), z.std())  # calibrated, not only bounded


@pytest.mark.slow
def test_watermarked_generations_are_detected_and_human_text_is_not(trained_char_gpt, tmp_path):
    pipeline = load(trained_char_gpt)
    mark = pipeline.watermark(42, gamma=0.25, delta=2.0)
    marked = pipeline.generate("The ", max_new_tokens=200, seed=0, watermark=mark)
    plain = pipeline.generate("The ", max_new_tokens=200, seed=0)
    human = read_corpus(DataConfig(name="pydoc"))[-2000:-1799]  # held-out validation text, 200 characters
    encode = pipeline.tokenizer.encode
    assert mark.score(encode(marked)).z > 4
    assert abs(mark.score(encode(plain)).z) < 3
    assert abs(mark.score(encode(human)).z) < 3
    assert abs(pipeline.watermark(43).score(encode(marked)).z) < 3  # another key finds nothing

    (tmp_path / "marked.txt").write_text(marked, encoding="utf-8")
    result = CliRunner().invoke(app, ["watermark", "detect", str(tmp_path / "marked.txt"), "--run",
                                      str(trained_char_gpt), "--key", "42", "--json"])
    assert result.exit_code == 0 and '"watermarked": true' in result.stdout
    generated = CliRunner().invoke(app, ["generate", str(trained_char_gpt), "--prompt", "The ", "--seed", "0",
                                         "--max-new-tokens", "200", "--watermark-key", "42"])
    assert generated.stdout == marked + "\n"
