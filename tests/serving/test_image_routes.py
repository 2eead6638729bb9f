"""Image generation and edits through the app: OpenAI's shapes, seeds that survive batching, provenance, batching."""

from __future__ import annotations

import base64
import io
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from aigckit.provenance.png import read_metadata
from aigckit.serving import create_app
from helpers import LiveServer


@pytest.fixture()
def client(served_runs, tmp_path):
    app = create_app(runs=[served_runs["diffusion"], served_runs["gan"], served_runs["vae"]], data_dir=tmp_path,
                     batch_window_ms=100)
    with TestClient(app) as client:
        yield client


def pixels(item: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))))


@pytest.mark.parametrize("model", ["diffusion", "gan", "vae"])
def test_generations_answer_in_openai_shape_with_provenance(client, model):
    answer = client.post("/v1/images/generations", json={"model": model, "n": 3, "seed": 7})
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert len(data) == 3 and all(pixels(item).shape[:2] == (8, 8) for item in data)
    assert [item["aigckit"]["seed"] for item in data] == [7, 8, 9]
    metadata = read_metadata(base64.b64decode(data[0]["b64_json"]))
    assert metadata["model"] == model and metadata["seed"] == 7
    assert metadata["checkpoint_sha256"] == client.get(f"/v1/models/{model}").json()["aigckit"]["checkpoint_sha256"]


def test_a_seed_gives_the_same_image_alone_as_inside_a_batch(client):
    alone = client.post("/v1/images/generations", json={"model": "diffusion", "n": 1, "seed": 12, "labels": [3],
                                                        "sampler": "ddpm"}).json()["data"][0]
    batch = client.post("/v1/images/generations", json={"model": "diffusion", "n": 3, "seed": 10, "labels": [3],
                                                        "sampler": "ddpm"}).json()["data"]
    assert batch[2]["aigckit"]["seed"] == 12
    # ddpm draws fresh noise at every step: each image's from its own seed, so batch-mates change nothing
    assert np.abs(pixels(alone).astype(int) - pixels(batch[2]).astype(int)).max() <= 1
    assert np.abs(pixels(batch[0]).astype(int) - pixels(batch[2]).astype(int)).max() > 1


def test_concurrent_requests_share_one_sampler_batch(client):
    state = client.app.state.aigckit
    answers = []

    def ask(seed: int) -> None:
        answers.append(client.post("/v1/images/generations", json={"model": "gan", "n": 2, "seed": seed}))

    threads = [threading.Thread(target=ask, args=(s,)) for s in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(a.status_code == 200 for a in answers)
    rows = [s for s in state.metrics.batch_rows.collect()[0].samples if s.labels["model"] == "gan"]
    count = next(s.value for s in rows if s.name.endswith("_count"))
    total = next(s.value for s in rows if s.name.endswith("_sum"))
    assert total == 8 and count < 4  # 8 images in fewer than 4 batches: requests were batched


def test_url_format_serves_the_stored_png(client):
    item = client.post("/v1/images/generations", json={"model": "vae", "response_format": "url"}).json()["data"][0]
    image = client.get(item["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert read_metadata(image.content)["model"] == "vae"
    assert client.get("/v1/files/" + "0" * 64 + ".png").status_code == 404
    assert client.get("/v1/files/..%2F..%2Fhistory.db").status_code == 404


@pytest.mark.parametrize("body, status, words", [
    ({"model": "nope"}, 404, "no model 'nope'"),
    ({"model": "gan", "size": "64x64"}, 422, "8x8"),
    ({"model": "gan", "steps": 4}, 422, "steps does not apply"),
    ({"model": "diffusion", "labels": [10]}, 422, "label"),
    ({"model": "diffusion", "sampler": "euler"}, 422, "sampler"),
    ({"model": "diffusion", "n": 17}, 422, "at most 16"),
    ({"model": "diffusion", "colour": "red"}, 422, "colour"),
])
def test_bad_requests_get_one_clear_line(client, body, status, words):
    answer = client.post("/v1/images/generations", json=body)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert words in error["message"] and "\n" not in error["message"] and "Traceback" not in answer.text


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("model", ["diffusion", "vae", "telea"])
def test_edits_repaint_only_the_mask(client, model):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8))
    hole = np.zeros((8, 8), dtype=np.uint8)
    hole[2:5, 2:5] = 255
    answer = client.post("/v1/images/edits", data={"model": model, "seed": "3", **({"steps": "10"} if model == "diffusion" else {})},
                         files={"image": ("a.png", _png(image), "image/png"),
                                "mask": ("m.png", _png(Image.fromarray(hole)), "image/png")})
    assert answer.status_code == 200, answer.text
    result = pixels(answer.json()["data"][0])
    known = hole == 0
    # known pixels are kept, apart from the invisible watermark every image carries (a few levels at most)
    assert np.abs(result[known].astype(int) - np.asarray(image)[known].astype(int)).max() <= 10
    assert answer.json()["data"][0]["aigckit"]["watermark"] == "aigckit-image-v1"


def test_edits_refuse_a_model_that_cannot_inpaint_and_a_bad_upload(client):
    image = _png(Image.new("L", (8, 8)))
    answer = client.post("/v1/images/edits", data={"model": "gan"},
                         files={"image": ("a.png", image, "image/png"), "mask": ("m.png", image, "image/png")})
    assert answer.status_code == 422 and "cannot inpaint" in answer.json()["error"]["message"]
    answer = client.post("/v1/images/edits", data={"model": "telea"},
                         files={"image": ("a.png", b"not an image", "image/png"), "mask": ("m.png", image, "image/png")})
    assert answer.status_code == 422 and "not an image" in answer.json()["error"]["message"]


def test_the_openai_client_generates_and_edits_images_on_a_real_server(served_runs, tmp_path):
    import openai

    app = create_app(runs=[served_runs["diffusion"], served_runs["vae"]], data_dir=tmp_path, precision="fp32")
    with LiveServer(app) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        made = client.images.generate(model="diffusion", n=2, response_format="b64_json", size="8x8",
                                      prompt="sevens", extra_body={"labels": [7], "seed": 4, "steps": 3})
        assert len(made.data) == 2
        first = base64.b64decode(made.data[0].b64_json)
        assert read_metadata(first)["label"] == 7 and read_metadata(first)["prompt"] == "sevens"
        hole = np.zeros((8, 8), dtype=np.uint8)
        hole[:4] = 255
        edited = client.images.edit(model="vae", prompt="repair the top", image=("in.png", first, "image/png"),
                                    mask=("mask.png", _png(Image.fromarray(hole)), "image/png"),
                                    response_format="b64_json")
        repaired = np.asarray(Image.open(io.BytesIO(base64.b64decode(edited.data[0].b64_json))))
        kept = repaired[4:].astype(int) - np.asarray(Image.open(io.BytesIO(first)))[4:].astype(int)
        assert np.abs(kept).max() <= 10  # known pixels kept, apart from the watermark every image carries
        with pytest.raises(openai.UnprocessableEntityError, match="8x8"):
            client.images.generate(model="diffusion", size="256x256", prompt="x")


def test_an_edit_runs_as_a_job_with_base64_uploads(client):
    import time

    image = _png(Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 3))
    hole = np.zeros((8, 8), dtype=np.uint8)
    hole[3:6, 3:6] = 255
    request = {"model": "diffusion", "steps": 10, "seed": 1, "image": base64.b64encode(image).decode(),
               "mask": base64.b64encode(_png(Image.fromarray(hole))).decode()}
    job = client.post("/v1/jobs", json={"type": "images.edits", "request": request})
    assert job.status_code == 202, job.text
    deadline = time.monotonic() + 60
    while (state := client.get(f"/v1/jobs/{job.json()['id']}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert state["status"] == "done" and state["progress"] == {"step": 1, "total": 1}
    result = pixels(state["result"]["data"][0])
    kept = result[hole == 0].astype(int) - np.asarray(Image.open(io.BytesIO(image)))[hole == 0].astype(int)
    assert np.abs(kept).max() <= 10  # known pixels kept, apart from the watermark every image carries
    bad = client.post("/v1/jobs", json={"type": "images.edits", "request": {**request, "mask": "not base64!"}})
    assert bad.status_code == 422 and "not base64" in bad.json()["error"]["message"]
    huge = client.post("/v1/jobs", json={"type": "images.edits", "request": {**request, "n": 10**12}})
    assert huge.status_code == 422 and "at most 16" in huge.json()["error"]["message"]  # refused before any work
