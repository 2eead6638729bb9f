"""Tokenizers: character level (any Unicode), byte-level BPE (Hugging Face `tokenizers`), or a saved one.

Every tokenizer saves itself as one tokenizer.json in the run and round-trips text exactly (the character
tokenizer as long as every character was seen in training, or maps unseen ones by its unknown policy).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Protocol

from ..atomic import atomic_path, atomic_write_text
from ..errors import DataError

__all__ = ["Tokenizer", "CharTokenizer", "BPETokenizer", "load_tokenizer", "train_tokenizer", "tokenizer_sha256"]


class Tokenizer(Protocol):
    """encode / decode / vocab_size / save, the same for every kind."""

    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def save(self, path: Path) -> None: ...

    def vocabulary(self) -> list[str]: ...


class CharTokenizer:
    """One token per Unicode character seen in training; unseen characters follow `unknown`:
    'error' (raise), 'skip' (drop them) or 'replace' (map to U+FFFD, which is always in the vocabulary)."""

    REPLACEMENT = "\ufffd"

    def __init__(self, chars: list[str], unknown: str = "replace") -> None:
        if unknown not in ("error", "skip", "replace"):
            raise DataError(f"unknown-character policy must be error, skip or replace, got {unknown!r}")
        self.chars = list(chars) if self.REPLACEMENT in chars else list(chars) + [self.REPLACEMENT]
        self.unknown = unknown
        self.index = {c: i for i, c in enumerate(self.chars)}
        self.vocab_size = len(self.chars)

    @classmethod
    def train(cls, text: str, unknown: str = "replace") -> CharTokenizer:
        """The sorted set of characters of `text`."""
        return cls(sorted(set(text)), unknown)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`."""
        ids = []
        for c in text:
            i = self.index.get(c)
            if i is None:
                if self.unknown == "error":
                    raise DataError(f"character {c!r} is not in the vocabulary; retrain or use unknown=replace")
                if self.unknown == "skip":
                    continue
                i = self.index[self.REPLACEMENT]
            ids.append(i)
        return ids

    def decode(self, ids: list[int]) -> str:
        """Text of token ids."""
        return "".join(self.chars[i] for i in ids)

    def save(self, path: Path) -> None:
        """Write tokenizer.json (atomically)."""
        atomic_write_text(path, json.dumps({"type": "char", "chars": self.chars, "unknown": self.unknown},
                                           ensure_ascii=False))

    def vocabulary(self) -> list[str]:
        """The tokens in id order."""
        return list(self.chars)


class BPETokenizer:
    """Byte-level BPE trained with Hugging Face `tokenizers` (GPT-2's scheme): any text round-trips."""

    def __init__(self, tokenizer) -> None:  # noqa: ANN001 - a tokenizers.Tokenizer
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()

    @classmethod
    def train(cls, text: str, vocab_size: int) -> BPETokenizer:
        """Learn merges on `text` up to `vocab_size` tokens (256 byte tokens included)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tokenizer.train_from_iterator([text[i:i + 100_000] for i in range(0, len(text), 100_000)], trainer)
        return cls(tokenizer)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`."""
        return self.tokenizer.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        """Text of token ids."""
        return self.tokenizer.decode(list(ids))

    def save(self, path: Path) -> None:
        """Write tokenizer.json (the `tokenizers` format), atomically."""
        with atomic_path(path) as tmp:
            self.tokenizer.save(str(tmp))

    def vocabulary(self) -> list[str]:
        """The tokens in id order (added tokens included)."""
        return [token for token, _ in sorted(self.tokenizer.get_vocab(with_added_tokens=True).items(),
                                             key=lambda item: item[1])]


def tokenizer_sha256(tokenizer: CharTokenizer | BPETokenizer) -> str:
    """sha256 of the tokenizer's kind and vocabulary in id order: equal for the same tokens with the same ids,
    whichever file or library version they were read from."""
    kind = "char" if isinstance(tokenizer, CharTokenizer) else "bpe"
    return hashlib.sha256(json.dumps([kind, tokenizer.vocabulary()], ensure_ascii=True).encode()).hexdigest()


def load_tokenizer(path: str | Path) -> CharTokenizer | BPETokenizer:
    """A tokenizer.json written by either kind, or a pretrained tokenizer's directory (a `transformers` one
    without tokenizer.json is converted through its fast tokenizer)."""
    path = Path(path)
    if path.is_dir() and not (path / "tokenizer.json").is_file() and (path / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        return BPETokenizer(AutoTokenizer.from_pretrained(path).backend_tokenizer)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise DataError(f"no tokenizer at {path}; give a tokenizer.json or a folder holding one")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataError(f"{path} is damaged (not a JSON tokenizer); restore it from the run it came from") from None
    if isinstance(data, dict) and data.get("type") == "char":
        return CharTokenizer(data["chars"], data["unknown"])
    from tokenizers import Tokenizer

    try:
        return BPETokenizer(Tokenizer.from_file(str(path)))
    except Exception as error:  # the tokenizers library raises its own Exception type for any malformed file
        raise DataError(f"{path} is not a tokenizer the `tokenizers` library can read ({error})") from None


def train_tokenizer(kind: str, text: str, vocab_size: int) -> CharTokenizer | BPETokenizer:
    """'char', 'bpe', a saved tokenizer.json, or a pretrained tokenizer (local directory or Hub id)."""
    if kind == "char":
        return CharTokenizer.train(text)
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size)
    if Path(kind).expanduser().is_file():
        return load_tokenizer(kind)
    from ..hub import resolve_pretrained

    return load_tokenizer(resolve_pretrained(kind))
