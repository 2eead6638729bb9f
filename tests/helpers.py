"""Helpers shared by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigckit.config import config_from_dict

FSDD = Path(__file__).parents[2] / "shared" / "data" / "fsdd"  # the spoken digits beside the repository
needs_fsdd = pytest.mark.skipif(not (FSDD / "recordings").is_dir(), reason="../shared/data/fsdd is not here")
MNIST = Path(__file__).parents[2] / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                                 reason="../shared/data/mnist is not here")


def tiny_config(model: dict, *, data: dict | None = None, train: dict | None = None):
    """A RunConfig for fast tests: digits at 8x8, no progress noise, rare sample grids."""
    return config_from_dict({
        "model": {"preset": "tiny", **model},
        "data": {"name": "digits", "image_size": 8, **(data or {})},
        "train": {"batch_size": 16, "max_steps": 2, "log_every": 1, "sample_every": 1000, "checkpoint_every": 1000,
                  **(train or {})},
    })


class StopAt:
    """A trainer callback raising KeyboardInterrupt at the end of step `step` (after that step's checkpoint)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer) -> None:
        if trainer.step == self.step:
            raise KeyboardInterrupt


def save_tiny_transformers_model(folder, hf_config, tokenizer_json=None):
    """Save a randomly initialised `transformers` causal LM (weights ~ N(0, 0.2), so that logits differ clearly)
    with a 300-token BPE tokenizer trained on the pydoc text; returns the model in eval mode."""
    import shutil

    import torch
    import transformers

    from aigckit.config import DataConfig
    from aigckit.data.text import read_corpus
    from aigckit.data.tokenizers import BPETokenizer

    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(hf_config)
    for p in model.parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, 0.0, 0.2)
    model.save_pretrained(folder)
    if tokenizer_json is None:
        BPETokenizer.train(read_corpus(DataConfig(name="pydoc")), 300).save(folder / "tokenizer.json")
    else:
        shutil.copy(tokenizer_json, folder / "tokenizer.json")
    return model.eval()


def tiny_gpt2_config():
    """A 2-layer, 32-wide GPT-2 over 300 tokens and 64 positions."""
    import transformers

    return transformers.GPT2Config(vocab_size=300, n_positions=64, n_embd=32, n_layer=2, n_head=2, bos_token_id=0,
                                   eos_token_id=0)


def pydoc_lm_config(model: dict, *, max_steps: int = 300, sample_every: int = 1000):
    """A short character-level run on the pydoc text (block 64, batch 32, no EMA) for a language model."""
    return config_from_dict({
        "model": {"preset": "tiny", "n_embd": 64, "lr": 3e-3, "weight_decay": 0.0, **model},
        "data": {"name": "pydoc", "block_size": 64},
        "train": {"max_steps": max_steps, "batch_size": 32, "use_ema": False, "log_every": 50,
                  "sample_every": sample_every, "checkpoint_every": 1000},
    })


class LiveServer:
    """A real uvicorn server over an ASGI app, in a thread of this process, on 127.0.0.1 and a free port."""

    def __init__(self, app, *, graceful_s: float = 5.0) -> None:
        import socket
        import threading

        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=graceful_s)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)

    def __enter__(self) -> "LiveServer":
        import time

        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 60) -> None:
        """Shut down as on SIGINT/SIGTERM (uvicorn's should_exit) and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout)

    def __exit__(self, *exc) -> None:
        self.stop()
