"""Pretrained models and tokenizers by local path or Hugging Face Hub id (the Hub needs a network)."""

from __future__ import annotations

from pathlib import Path

from .errors import AigcError

__all__ = ["resolve_pretrained"]


def resolve_pretrained(name_or_dir: str) -> Path:
    """A local model directory as is; otherwise download the Hub repository `name_or_dir` (needs a network)."""
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_dir, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))
    except Exception as error:  # offline, unknown id, gated repository: all end the same way for the user
        raise AigcError(
            f"{name_or_dir!r} is not a local directory and could not be downloaded from the Hugging Face Hub "
            f"({type(error).__name__}); on a machine with a network run `hf download {name_or_dir} --local-dir "
            f"DIR`, copy DIR here and pass its path") from None
