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


@pytest.fixture(autouse=True)
def _private_config_folder(tmp_path_factory, monkeypatch):
    """Watermark keys and signing settings live in a throwaway config folder, never the user's ~/.config."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    for name in ("AIGCKIT_WATERMARK_KEY", "AIGCKIT_C2PA_CERT", "AIGCKIT_C2PA_KEY", "AIGCKIT_C2PA_TSA_URL",
                 "AIGCKIT_C2PA_TRUST_ANCHORS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def trained_diffusion(tmp_path_factory):
    """A class-conditional diffusion model trained briefly on 8x8 digits (about 30 s); its run directory."""
    from aigckit.training import Trainer
    from helpers import tiny_config

    config = tiny_config({"name": "diffusion", "preset": "small", "conditional": True, "base_channels": 16,
                          "channel_mults": [1, 2], "lr": 1e-3},
                         train={"max_steps": 500, "batch_size": 64, "log_every": 50, "ema_decay": 0.99})
    run_dir = tmp_path_factory.mktemp("diffusion") / "run"
    Trainer(config, run_dir, show_progress=False).fit()
    return run_dir


@pytest.fixture(scope="session")
def trained_vae(tmp_path_factory):
    """A conv-VAE trained briefly on 8x8 digits; its run directory."""
    from aigckit.training import Trainer
    from helpers import tiny_config

    config = tiny_config({"name": "conv-vae", "preset": "small"},
                         train={"max_steps": 400, "batch_size": 64, "log_every": 50, "use_ema": False})
    run_dir = tmp_path_factory.mktemp("vae") / "run"
    Trainer(config, run_dir, show_progress=False).fit()
    return run_dir


@pytest.fixture(scope="session")
def speech_run(tmp_path_factory):
    """A class-conditional diffusion model on FSDD log-mels at 32x32, trained 2 steps; its run directory
    (named fsdd-diffusion, its model id on a server)."""
    from aigckit.training import Trainer
    from helpers import FSDD, tiny_config

    run_dir = tmp_path_factory.mktemp("speech") / "fsdd-diffusion"
    config = tiny_config({"name": "diffusion", "conditional": True},
                         data={"name": "fsdd", "root": str(FSDD), "image_size": 32, "download": False},
                         train={"max_steps": 2, "batch_size": 8})
    Trainer(config, run_dir, show_progress=False).fit()
    return run_dir


@pytest.fixture(scope="session")
def clip_run(tmp_path_factory):
    """A tiny clip model trained 300 steps on 24x24 captioned MNIST canvases; (trainer, run directory)."""
    from aigckit.config import config_from_dict
    from aigckit.training import Trainer
    from helpers import MNIST

    config = config_from_dict({
        "model": {"name": "clip", "preset": "tiny", "lr": 3e-3},
        "data": {"name": "captioned-mnist", "root": str(MNIST), "image_size": 24, "download": False},
        "train": {"max_steps": 300, "batch_size": 64, "use_ema": False, "log_every": 10,
                  "sample_every": 100000, "checkpoint_every": 100000, "precision": "fp32"},
    })
    run_dir = tmp_path_factory.mktemp("clip") / "run"
    trainer = Trainer(config, run_dir, show_progress=False)
    trainer.fit()
    return trainer, run_dir


@pytest.fixture(scope="session")
def text_to_image_run(tmp_path_factory):
    """A text-conditional diffusion model trained a few steps on captioned MNIST canvases at 24x24 (a tiny UNet on
    2x2 patches, a one-layer caption encoder); its run directory (named canvas-t2i, its model id on a server)."""
    from aigckit.config import config_from_dict
    from aigckit.training import Trainer
    from helpers import MNIST

    run_dir = tmp_path_factory.mktemp("text-to-image") / "canvas-t2i"
    config = config_from_dict({
        "model": {"name": "diffusion", "text_conditional": True, "text_width": 32, "text_layers": 1, "text_heads": 2,
                  "cross_attention_resolution": 12, "patch_size": 2, "base_channels": 8, "channel_mults": [1, 2],
                  "attention_resolution": 0, "prediction": "v", "min_snr_gamma": 5, "lr": 2e-3, "guidance": 3.0,
                  "sampling_steps": 10},
        "data": {"name": "captioned-mnist", "root": str(MNIST), "image_size": 24, "download": False},
        "train": {"max_steps": 60, "batch_size": 16, "use_ema": False, "warmup_steps": 5, "log_every": 10,
                  "sample_every": 100000, "checkpoint_every": 100000},
    })
    Trainer(config, run_dir, show_progress=False).fit()
    return run_dir


@pytest.fixture(scope="session")
def vocoder_cache(speech_run, tmp_path_factory):
    """A cache folder holding the trained vocoders of speech_run's data: the mel inverter trained 150 steps, the
    Vocos-style vocoder 200."""
    from aigckit.audio.vocoder import load_or_train_vocoder
    from aigckit.data.audio import mel_spec
    from aigckit.evaluation.evaluate import run_config

    cache = tmp_path_factory.mktemp("vocoder-cache")
    data = run_config(speech_run).data
    load_or_train_vocoder(data, mel_spec(data.image_size), cache, steps=150)
    load_or_train_vocoder(data, mel_spec(data.image_size), cache, name="vocos", steps=200)
    return cache


@pytest.fixture(scope="session")
def eval_cache(tmp_path_factory):
    """One cache of evaluators and real-data statistics for the whole session."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def trained_char_gpt(tmp_path_factory):
    """A small character-level GPT trained briefly on the pydoc text; its run directory."""
    from helpers import pydoc_lm_config

    from aigckit.training import Trainer

    config = pydoc_lm_config({"name": "gpt"})
    run_dir = tmp_path_factory.mktemp("char-gpt") / "run"
    Trainer(config, run_dir, show_progress=False).fit()
    return run_dir
