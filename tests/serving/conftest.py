"""Fixtures of the server tests: tiny runs of every served kind (images, video, text), trained a few steps, and apps
over them."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def served_runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny run directories named diffusion, gan, vae (8x8 digits, a few steps) and gpt (pydoc characters).

    Their folder names are their model ids on a server: {"diffusion": path, "gan": path, "vae": path, "gpt": path}.
    """
    from aigckit.training import Trainer
    from helpers import pydoc_lm_config, tiny_config

    root = tmp_path_factory.mktemp("served-runs")
    configs = {
        "diffusion": tiny_config({"name": "diffusion", "conditional": True, "base_channels": 8,
                                  "channel_mults": [1, 2]}, train={"max_steps": 4, "batch_size": 16}),
        "gan": tiny_config({"name": "dcgan", "conditional": True}, train={"max_steps": 4, "batch_size": 16}),
        "vae": tiny_config({"name": "conv-vae"}, train={"max_steps": 4, "batch_size": 16, "use_ema": False}),
        "gpt": pydoc_lm_config({"name": "gpt"}, max_steps=4),
    }
    runs = {}
    for name, config in configs.items():
        runs[name] = root / name
        Trainer(config, runs[name], show_progress=False).fit()
    return runs


@pytest.fixture(scope="session")
def served_video_run(tmp_path_factory) -> Path:
    """A class-conditional video diffusion run on moving digits (clips of 8 frames of 8x8, one digit each; the tiny
    UNet of tests/models/diffusion/test_video.py), trained 2 steps; its folder name, moving-digits, is its model id."""
    from aigckit.training import Trainer
    from helpers import tiny_config

    run = tmp_path_factory.mktemp("video") / "moving-digits"
    config = tiny_config({"name": "diffusion", "conditional": True, "lr": 3e-3, "attention_resolution": 0,
                          "temporal_attention_resolution": 4},
                         data={"name": "moving-digits", "image_size": 8}, train={"batch_size": 8, "max_steps": 2})
    Trainer(config, run, show_progress=False).fit()
    return run


@pytest.fixture(scope="session")
def served_prediction_run(tmp_path_factory) -> Path:
    """The same tiny video model trained 2 steps to continue a given first frame too (model.given_first_frame);
    its model id is continues."""
    from aigckit.training import Trainer
    from helpers import tiny_config

    run = tmp_path_factory.mktemp("prediction") / "continues"
    config = tiny_config({"name": "diffusion", "conditional": True, "attention_resolution": 0,
                          "temporal_attention_resolution": 4, "given_first_frame": 0.5},
                         data={"name": "moving-digits", "image_size": 8}, train={"batch_size": 8, "max_steps": 2})
    Trainer(config, run, show_progress=False).fit()
    return run


@pytest.fixture
def live_server():
    """Start a LiveServer over an app: `with live_server(app) as server: httpx.get(server.url + ...)`."""
    from helpers import LiveServer

    return LiveServer
