"""Fixtures of the server tests: tiny runs of every served kind, trained a few steps, and apps over them."""

from __future__ import annotations

import socket
import threading
import time
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


def free_port() -> int:
    """A TCP port nobody listens on now, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """A real uvicorn server over an app, in a thread of this process, on 127.0.0.1."""

    def __init__(self, app, *, graceful_s: float = 5.0) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=graceful_s, limit_concurrency=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)

    def __enter__(self) -> "LiveServer":
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


@pytest.fixture
def live_server():
    """Start a LiveServer over an app: `with live_server(app) as server: httpx.get(server.url + ...)`."""
    return LiveServer
