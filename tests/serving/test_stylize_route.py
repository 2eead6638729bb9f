"""POST /v1/images/stylize on a real server with a real HTTP client: a fast-style and an AdaIN run."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from aigckit.data.photos import bundled_photo
from aigckit.provenance.png import read_metadata
from aigckit.serving import create_app
from aigckit.training import Trainer
from helpers import LiveServer, tiny_config


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(served_runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("stylizers")
    for name in ("fast-style", "adain"):
        config = tiny_config({"name": name, "features": "random"}, data={"name": "photos", "image_size": 16},
                             train={"batch_size": 2, "max_steps": 2, "use_ema": False})
        Trainer(config, root / name, show_progress=False).fit()
    app = create_app(runs=[root / "fast-style", root / "adain", served_runs["gan"]], data_dir=root / "server",
                     precision="fp32")
    with LiveServer(app) as live:
        yield live


CONTENT = _png(bundled_photo("chelsea").resize((90, 60)))
STYLE = _png(bundled_photo("coffee").resize((40, 40)))


def test_a_fast_network_stylizes_an_upload_with_provenance(server):
    answer = httpx.post(f"{server.url}/v1/images/stylize", data={"model": "fast-style", "size": "48"},
                        files={"image": ("c.png", CONTENT, "image/png")}, timeout=60)
    assert answer.status_code == 200, answer.text
    png = base64.b64decode(answer.json()["data"][0]["b64_json"])
    assert Image.open(io.BytesIO(png)).size == (48, 32)
    metadata = read_metadata(png)
    assert metadata["method"] == "fast" and metadata["model"] == "fast-style" and metadata["size"] == 48
    assert metadata["watermark"] == "aigckit-image-v1"


def test_adain_takes_the_style_upload_and_alpha(server):
    def stylize(alpha: str) -> np.ndarray:
        answer = httpx.post(f"{server.url}/v1/images/stylize", data={"model": "adain", "size": "32", "alpha": alpha,
                                                                       "watermark": "false"},
                            files={"image": ("c.png", CONTENT, "image/png"), "style": ("s.png", STYLE, "image/png")},
                            timeout=60)
        assert answer.status_code == 200, answer.text
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(answer.json()["data"][0]["b64_json"]))))

    full, none = stylize("1"), stylize("0")
    assert full.shape == (21, 32, 3) and np.abs(full.astype(int) - none.astype(int)).mean() > 0.5


def test_stylize_refuses_what_a_model_cannot_do(server):
    files = {"image": ("c.png", CONTENT, "image/png")}
    cases = [({"model": "adain"}, files, "send the style image"),
             ({"model": "fast-style", "alpha": "0.5"}, files, "drop style and alpha"),
             ({"model": "gan"}, files, "not a stylizer"),
             ({"model": "fast-style"}, {"image": ("c.png", b"junk", "image/png")}, "not an image")]
    for data, upload, message in cases:
        answer = httpx.post(f"{server.url}/v1/images/stylize", data=data, files=upload, timeout=60)
        assert answer.status_code == 422 and message in answer.json()["error"]["message"], answer.text
    assert httpx.post(f"{server.url}/v1/images/stylize", data={"model": "nope"}, files=files).status_code == 404
