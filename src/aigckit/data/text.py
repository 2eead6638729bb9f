"""Text corpora as token ids: Python's bundled help texts, or any UTF-8 file or folder of files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..config import DataConfig
from ..errors import DataError
from .base import data_root, register_dataset
from .tokenizers import Tokenizer, train_tokenizer

__all__ = ["TextDataset", "read_corpus"]


class TextDataset:
    """Token ids with a window length; item i is the window ids[i : i + block_size + 1] (inputs and targets)."""

    def __init__(self, ids: np.ndarray, block_size: int, tokenizer: Tokenizer) -> None:
        if len(ids) <= block_size + 1:
            raise DataError(f"the text has {len(ids)} tokens, fewer than one window of {block_size + 1}; "
                            f"lower data.block_size or give more text")
        self.ids, self.block_size, self.tokenizer = ids, block_size, tokenizer

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

    def save_to(self, run_dir: Path) -> None:
        """Keep the tokenizer in the run and move the ids to a memory-mapped file there."""
        run_dir = Path(run_dir)
        self.tokenizer.save(run_dir / "tokenizer.json")
        path = run_dir / "data" / "tokens.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.asarray(self.ids, dtype=np.int32).tofile(path)
        self.ids = np.memmap(path, dtype=np.int32, mode="r")


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


def _load_text(config: DataConfig, split: str) -> TextDataset:
    text = read_corpus(config)
    cut = int(len(text) * (1 - config.val_fraction))  # the last part is the validation text, as in nanoGPT
    tokenizer = train_tokenizer(config.tokenizer, text[:cut], config.vocab_size)
    part = text[:cut] if split == "train" else text[cut:]
    return TextDataset(np.asarray(tokenizer.encode(part), dtype=np.int32), config.block_size, tokenizer)


@register_dataset("pydoc", "English help texts bundled with Python (pydoc_data.topics, ~0.46 MB); no files needed")
def load_pydoc(config: DataConfig, split: str) -> TextDataset:
    """Python's help texts; the last data.val_fraction of the characters is the validation split."""
    return _load_text(config, split)


@register_dataset("text", "any UTF-8 text file or folder of files (data.root), e.g. tiny Shakespeare")
def load_text(config: DataConfig, split: str) -> TextDataset:
    """A text file or folder; the last data.val_fraction of the characters is the validation split."""
    return _load_text(config, split)
