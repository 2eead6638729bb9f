"""Text corpora as token ids: Python's bundled help texts, or any UTF-8 file or folder of files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..atomic import atomic_path, atomic_write_text
from ..config import DataConfig
from ..errors import DataError
from .base import data_root, register_dataset
from .tokenizers import Tokenizer, train_tokenizer

__all__ = ["TextDataset", "read_corpus", "split_corpus", "corpus_record", "HeldOutText", "held_out_text"]

CORPUS_RECORD = Path("data") / "corpus.json"  # in the run directory: what the run was trained on


class TextDataset:
    """Token ids with a window length; item i is the window ids[i : i + block_size + 1] (inputs and targets)."""

    def __init__(self, ids: np.ndarray, block_size: int, tokenizer: Tokenizer,
                 corpus: dict[str, Any] | None = None) -> None:
        if len(ids) <= block_size + 1:
            raise DataError(f"the text has {len(ids)} tokens, fewer than one window of {block_size + 1}; "
                            f"lower data.block_size or give more text")
        self.ids, self.block_size, self.tokenizer = ids, block_size, tokenizer
        self.corpus = corpus  # corpus_record() of the text the split was cut from

    def __len__(self) -> int:
        return len(self.ids) - self.block_size - 1  # every possible window start

    @property
    def model_facts(self) -> dict[str, int]:
        """What the model takes from the data: vocab_size and block_size."""
        return {"vocab_size": self.tokenizer.vocab_size, "block_size": self.block_size}

    def batch(self, indices: Tensor) -> dict[str, Tensor]:
        """{"tokens": (B, block_size + 1) int64}: inputs are [:, :-1], targets [:, 1:]."""
        offsets = indices.numpy()[:, None] + np.arange(self.block_size + 1)[None, :]
        return {"tokens": torch.from_numpy(np.asarray(self.ids[offsets], dtype=np.int64))}

    def save_to(self, run_dir: Path, *, resuming: bool = False) -> None:
        """Keep the tokenizer in the run, move the ids to a memory-mapped file there, and record the corpus's
        sha256 (and its validation split's) in data/corpus.json, so that evaluation can tell a changed corpus.

        resuming: the run exists; a corpus that differs from the one it was trained on is refused."""
        run_dir = Path(run_dir)
        record = run_dir / CORPUS_RECORD
        if resuming and self.corpus is not None and record.is_file():
            then = json.loads(record.read_text(encoding="utf-8"))
            if then.get("sha256") != self.corpus["sha256"]:
                raise DataError(f"the corpus ({self.corpus['root'] or 'pydoc'}) changed since {run_dir} started "
                                f"(sha256 {self.corpus['sha256'][:12]}…, trained on {then.get('sha256', '?')[:12]}…); "
                                f"resume on the same text, or start a new run")
        self.tokenizer.save(run_dir / "tokenizer.json")
        path = run_dir / "data" / "tokens.bin"
        with atomic_path(path) as tmp:
            np.asarray(self.ids, dtype=np.int32).tofile(tmp)
        self.ids = np.memmap(path, dtype=np.int32, mode="r")
        if self.corpus is not None:
            atomic_write_text(run_dir / CORPUS_RECORD, json.dumps(self.corpus, indent=2, ensure_ascii=False) + "\n")


def read_corpus(config: DataConfig) -> str:
    """The whole corpus as one string."""
    if config.name == "pydoc":
        import pydoc_data.topics

        topics = pydoc_data.topics.topics
        return "\n\n".join(topics[key] for key in sorted(topics))
    root = data_root(config)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    if not files:
        raise DataError(f"text: no file at {root}; set data.root to a UTF-8 text file or a folder of them")
    parts = []
    for path in files:
        try:
            parts.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise DataError(f"{path} is not UTF-8 text; convert it or remove it from {root}") from None
    return "\n".join(parts)


def split_corpus(text: str, val_fraction: float) -> tuple[str, str]:
    """The training and validation text: the last val_fraction of the characters is held out, as in nanoGPT."""
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def corpus_record(config: DataConfig, text: str) -> dict[str, Any]:
    """What identifies the corpus a run trained on: its source, split and the sha256 of the whole text and of
    the validation part (UTF-8)."""
    _, val = split_corpus(text, config.val_fraction)
    return {"dataset": config.name, "root": None if config.name == "pydoc" else str(data_root(config)),
            "val_fraction": config.val_fraction, "characters": len(text), "sha256": _sha256(text),
            "val_characters": len(val), "val_sha256": _sha256(val)}


class HeldOutText(NamedTuple):
    """The validation text of a run's corpus as it is on disk now, and a one-line warning when that corpus is
    not the one the run was trained on (None when it is)."""

    text: str
    warning: str | None


def held_out_text(run_dir: Path, config: DataConfig) -> HeldOutText:
    """The run's validation split read from the corpus on disk, checked against the hashes recorded at training.

    A corpus that cannot be read, or that has no validation text, raises DataError.
    """
    text = read_corpus(config)
    now = corpus_record(config, text)
    _, val = split_corpus(text, config.val_fraction)
    if not val:
        raise DataError(f"data.val_fraction is {config.val_fraction}: the corpus has no validation text to "
                        f"evaluate; the run must hold some text out")
    path = Path(run_dir) / CORPUS_RECORD
    if not path.is_file():
        return HeldOutText(val, f"{run_dir} records no corpus hash (trained before aigckit kept one): the "
                                f"validation text could not be checked against the training corpus")
    try:
        then = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataError(f"{path} is damaged (not JSON); the corpus the run trained on cannot be checked") from None
    if now["sha256"] == then.get("sha256"):
        return HeldOutText(val, None)
    source = now["root"] or "the pydoc help texts of this Python"
    if now["val_sha256"] == then.get("val_sha256"):
        return HeldOutText(val, f"the corpus ({source}) changed since training (sha256 {now['sha256'][:12]}…, "
                                f"trained on {then.get('sha256', '?')[:12]}…) but its validation text did not")
    return HeldOutText(val, f"the corpus ({source}) changed since training: {now['val_characters']:,} validation "
                            f"characters, sha256 {now['val_sha256'][:12]}…, where the run held out "
                            f"{then.get('val_characters', 0):,} with sha256 {then.get('val_sha256', '?')[:12]}…; "
                            f"these numbers are not comparable with the run's")


def _load_text(config: DataConfig, split: str) -> TextDataset:
    text = read_corpus(config)
    train, val = split_corpus(text, config.val_fraction)
    tokenizer = train_tokenizer(config.tokenizer, train, config.vocab_size)
    part = train if split == "train" else val
    return TextDataset(np.asarray(tokenizer.encode(part), dtype=np.int32), config.block_size, tokenizer,
                       corpus_record(config, text))


@register_dataset("pydoc", "English help texts bundled with Python (pydoc_data.topics, ~0.46 MB); no files needed")
def load_pydoc(config: DataConfig, split: str) -> TextDataset:
    """Python's help texts; the last data.val_fraction of the characters is the validation split."""
    return _load_text(config, split)


@register_dataset("text", "any UTF-8 text file or folder of files (data.root), e.g. tiny Shakespeare")
def load_text(config: DataConfig, split: str) -> TextDataset:
    """A text file or folder; the last data.val_fraction of the characters is the validation split."""
    return _load_text(config, split)
