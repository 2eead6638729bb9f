"""Helpers shared by the tests."""

from __future__ import annotations

from aigckit.config import config_from_dict


def tiny_config(model: dict, *, data: dict | None = None, train: dict | None = None):
    """A RunConfig for fast tests: digits at 8x8, no progress noise, rare sample grids."""
    return config_from_dict({
        "model": {"preset": "tiny", **model},
        "data": {"name": "digits", "image_size": 8, **(data or {})},
        "train": {"batch_size": 16, "max_steps": 2, "log_every": 1, "sample_every": 1000, "checkpoint_every": 1000,
                  **(train or {})},
    })
