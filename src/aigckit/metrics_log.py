"""The run's metrics.csv: one row per logged step, one column per scalar."""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["read_metrics"]


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv as dicts of floats (empty cells left out); [] when the file does not exist."""
    if not Path(path).is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
