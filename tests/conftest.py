"""Shared fixtures: tiny configs and a digit classifier trained on the real digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aigckit.config import DataConfig
from aigckit.data import load_dataset


@pytest.fixture(scope="session")
def digit_classifier():
    """A logistic-regression classifier of real digits, returning predict(images (B,1,S,S)) -> labels."""
    from sklearn.linear_model import LogisticRegression

    cache = {}

    def predict(images: torch.Tensor) -> np.ndarray:
        size = images.shape[-1]
        if size not in cache:
            data = load_dataset(DataConfig(name="digits", image_size=size), "train")
            cache[size] = LogisticRegression(max_iter=2000).fit(data.images.flatten(1).numpy(), data.labels.numpy())
        return cache[size].predict(images.flatten(1).float().cpu().numpy())

    return predict


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(2)
    yield
