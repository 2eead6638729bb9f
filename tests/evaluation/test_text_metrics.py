import hashlib
import json
import random

import numpy as np
import pytest

from aigckit import load
from aigckit.config import DataConfig
from aigckit.data.text import read_corpus
from aigckit.errors import DataError
from aigckit.evaluation.evaluate import evaluate_run
from aigckit.evaluation.language import validation_loss
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


# ---------------------------------------------------------------- evaluation of a language-model run


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A character-level GPT trained for a few steps on a 40,000-character text file; (run, corpus file)."""
    from aigckit.config import config_from_dict
    from aigckit.training import Trainer

    root = tmp_path_factory.mktemp("text-run")
    corpus = root / "corpus.txt"
    corpus.write_text(read_corpus(DataConfig(name="pydoc"))[:40_000], encoding="utf-8")
    config = config_from_dict({
        "model": {"name": "gpt", "preset": "tiny"},
        "data": {"name": "text", "root": str(corpus), "block_size": 32},
        "train": {"max_steps": 20, "batch_size": 16, "use_ema": False, "log_every": 10, "sample_every": 1000,
                  "checkpoint_every": 1000, "precision": "fp32"},
    })
    Trainer(config, root / "run", show_progress=False).fit()
    return root / "run", corpus


def test_a_text_run_records_the_hash_of_its_corpus_and_validation_split(text_run):
    run, corpus = text_run
    text = corpus.read_text(encoding="utf-8")
    record = json.loads((run / "data" / "corpus.json").read_text())
    assert record["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert record["val_sha256"] == hashlib.sha256(text[int(len(text) * 0.9):].encode()).hexdigest()


def test_evaluation_uses_the_runs_tokenizer_and_says_in_one_line_when_the_corpus_changed(text_run, capsys):
    run, corpus = text_run
    original = corpus.read_text(encoding="utf-8")
    val = original[int(len(original) * 0.9):]
    pipeline = load(run)
    expected, _ = validation_loss(pipeline.model, np.asarray(pipeline.tokenizer.encode(val)))
    first = evaluate_run(run, n=2)
    assert first["val_loss"] == pytest.approx(expected, rel=1e-6) and first["corpus_warning"] is None
    assert "warning" not in capsys.readouterr().err
    try:
        # a character the run never saw, where the training text starts: a tokenizer trained again on this
        # corpus would shift every id by one; the run's own tokenizer reads the same validation text as before
        corpus.write_text("\x01" + original[1:], encoding="utf-8")
        changed = evaluate_run(run, n=2)
        assert changed["val_loss"] == pytest.approx(first["val_loss"], rel=1e-6)
        assert "changed since training" in changed["corpus_warning"] and "did not" in changed["corpus_warning"]
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
        assert lines == [f"warning: {changed['corpus_warning']}"]

        corpus.write_text(original + "A new closing paragraph, written after training.\n" * 40, encoding="utf-8")
        grown = evaluate_run(run, n=2)
        assert "not comparable" in grown["corpus_warning"]
        assert json.loads((run / "eval" / "metrics.json").read_text())["corpus_warning"] == grown["corpus_warning"]

        corpus.unlink()
        with pytest.raises(DataError, match="no file at"):
            evaluate_run(run, n=2)
    finally:
        corpus.write_text(original, encoding="utf-8")
