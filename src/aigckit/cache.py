"""Where aigckit keeps what it can rebuild: evaluator networks, real-data statistics, measured peak FLOP/s."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    """$AIGCKIT_CACHE, else ~/.cache/aigckit."""
    return Path(os.environ.get("AIGCKIT_CACHE", Path.home() / ".cache" / "aigckit")).expanduser()
