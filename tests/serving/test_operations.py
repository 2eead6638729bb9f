"""Operations: /health and /ready, Prometheus /metrics after real requests, one JSON access-log line per request,
graceful shutdown of a real uvicorn server with a long job running, and a burst of 200 mixed requests."""

from __future__ import annotations

import asyncio
import base64
import gc
import io
import json
import logging
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from aigckit.serving import create_app
from aigckit.serving.history import HistoryStore

KEY = "ops-key-" + "k" * 24


@pytest.fixture(scope="module")
def make_app(served_runs, tmp_path_factory):
    def make(*names: str, **fields):
        fields.setdefault("data_dir", tmp_path_factory.mktemp("data"))
        fields.setdefault("precision", "fp32")
        return create_app(runs=[served_runs[name] for name in names], **fields)

    return make


# ---------------------------------------------------------------------------------------------------- health, ready
def test_ready_is_503_until_the_models_have_loaded_and_again_while_stopping(make_app, monkeypatch):
    app = make_app("gan", "vae")
    catalog = app.state.aigckit.catalog
    loading, release = threading.Event(), threading.Event()
    load_all = catalog.load_all

    def slow_load_all() -> None:
        loading.set()
        release.wait(30)
        load_all()

    monkeypatch.setattr(catalog, "load_all", slow_load_all)

    async def scenario() -> list[tuple[int, dict]]:
        answers = []
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
            lifespan = app.router.lifespan_context(app)
            startup = asyncio.ensure_future(lifespan.__aenter__())
            while not loading.is_set():
                await asyncio.sleep(0.01)
            for path in ("/ready", "/health"):
                answer = await client.get(path)
                answers.append((answer.status_code, answer.json()))
            release.set()
            await startup
            answer = await client.get("/ready")
            answers.append((answer.status_code, answer.json()))
            await lifespan.__aexit__(None, None, None)
            answer = await client.get("/ready")
            answers.append((answer.status_code, answer.json()))
        return answers

    loading_ready, health, loaded, stopped = asyncio.run(scenario())
    assert loading_ready == (503, {"ready": False, "models": {"gan": False, "vae": False}})
    assert health == (200, {"status": "ok"})  # alive while loading
    assert loaded == (200, {"ready": True, "models": {"gan": True, "vae": True}})
    assert stopped[0] == 503 and stopped[1]["ready"] is False


def test_a_lazy_server_is_ready_before_any_model_loads(make_app):
    with TestClient(make_app("gan", lazy=True)) as client:
        assert client.get("/ready").json() == {"ready": True, "models": {"gan": False}}


# ---------------------------------------------------------------------------------------------------- metrics
def _samples(text: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def _value(samples: dict, name: str, **labels) -> float:
    return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_count_requests_latency_queues_batches_tokens_and_images(make_app):
    with TestClient(make_app("gan", "vae", "gpt")) as client:
        assert client.post("/v1/images/generations", json={"model": "gan", "n": 3}).status_code == 200
        assert client.post("/v1/images/generations", json={"model": "vae", "n": 2}).status_code == 200
        text = client.post("/v1/completions", json={"model": "gpt", "prompt": "The ", "max_tokens": 6})
        assert text.status_code == 200
        assert client.post("/v1/images/generations", json={"model": "nope"}).status_code == 404
        client.get("/v1/jobs/job-unknown")
        page = client.get("/metrics")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    m = _samples(page.text)
    assert _value(m, "aigckit_requests_total", route="/v1/images/generations", status="200") == 2
    assert _value(m, "aigckit_requests_total", route="/v1/images/generations", status="404") == 1
    assert _value(m, "aigckit_requests_total", route="/v1/jobs/{job_id}", status="404") == 1  # the template
    assert _value(m, "aigckit_request_seconds_count", route="/v1/images/generations") == 3
    assert _value(m, "aigckit_request_seconds_bucket", route="/v1/completions", le="+Inf") == 1
    assert _value(m, "aigckit_request_seconds_sum", route="/v1/completions") > 0
    assert _value(m, "aigckit_images_total", model="gan") == 3 and _value(m, "aigckit_images_total", model="vae") == 2
    assert _value(m, "aigckit_tokens_total", model="gpt") == text.json()["usage"]["completion_tokens"] == 6
    assert {s.labels["model"] for s in m["aigckit_queue_depth"]} == {"gan", "vae", "gpt"}
    assert all(s.value == 0 for s in m["aigckit_queue_depth"])
    assert _value(m, "aigckit_batch_rows_count") >= 2 and _value(m, "aigckit_batch_rows_sum") >= 5
    assert _value(m, "aigckit_jobs_total", status="done") == 3
    assert _value(m, "aigckit_job_run_seconds_count", model="gan") == 1
    assert _value(m, "aigckit_job_queued_seconds_count") == 3
    assert _value(m, "aigckit_requests_in_flight") == 1  # the /metrics request itself


def test_two_apps_in_one_process_keep_their_own_metrics(make_app):
    first, second = make_app("gan"), make_app("gan")
    with TestClient(first) as a, TestClient(second) as b:
        a.get("/v1/models")
        counted = _value(_samples(b.get("/metrics").text), "aigckit_requests_total", route="/v1/models")
    assert counted == 0


# ---------------------------------------------------------------------------------------------------- access log
def test_one_json_access_line_per_request_with_the_key_name_never_the_key(make_app, caplog):
    app = make_app("gan", api_keys={KEY: "ops"})
    with TestClient(app) as client, caplog.at_level(logging.INFO, logger="aigckit.serving.access"):
        caplog.clear()
        client.get("/v1/models")
        client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        client.post("/v1/images/generations", json={"model": "gan"}, headers={"Authorization": f"Bearer {KEY}"})
        client.get("/v1/jobs/x?token=1", headers={"Authorization": f"Bearer {KEY}"})
        client.get("/health")
        lines = [r.getMessage() for r in caplog.records if r.name == "aigckit.serving.access"]
    entries = [json.loads(line) for line in lines]
    assert [(e["method"], e["path"], e["status"], e["key"]) for e in entries] == [
        ("GET", "/v1/models", 401, None), ("GET", "/v1/models", 200, "ops"),
        ("POST", "/v1/images/generations", 200, "ops"), ("GET", "/v1/jobs/x", 404, "ops"), ("GET", "/health", 200, None)]
    assert all(set(e) == {"method", "path", "status", "ms", "key"} and e["ms"] >= 0 for e in entries)
    assert all("\n" not in line and KEY not in line for line in lines)


# ---------------------------------------------------------------------------------------------------- shutdown
def test_graceful_shutdown_cancels_a_running_job_and_ends_its_thread(make_app, live_server, caplog):
    """A real uvicorn server, a long diffusion job running; stopping the server (SIGINT/SIGTERM's path) cancels the
    job, ends the engine's thread within a sampler step, records the job, and logs no traceback."""
    thread_errors = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: thread_errors.append(args)
    app = make_app("diffusion")
    state = app.state.aigckit
    long_job = {"type": "images.generations",
                "request": {"model": "diffusion", "n": 16, "sampler": "ddpm", "steps": 100}}
    try:
        with caplog.at_level(logging.WARNING):
            server = live_server(app, graceful_s=5).__enter__()
            with httpx.Client(base_url=server.url, timeout=30) as client:
                job_id = client.post("/v1/jobs", json=long_job).json()["id"]
                deadline = time.monotonic() + 60
                while client.get(f"/v1/jobs/{job_id}").json()["progress"]["step"] < 1:
                    assert time.monotonic() < deadline, "the job did not start"
                    time.sleep(0.05)
            engine_thread = state.engines["diffusion"]._thread
            started = time.monotonic()
            server.stop(timeout=60)
            stopped_s = time.monotonic() - started
    finally:
        threading.excepthook = old_hook
    job = state.jobs.get(job_id)
    assert not server.thread.is_alive() and not engine_thread.is_alive()
    assert job.status == "cancelled" and job.error["type"] == "server_shutdown"
    assert job.step < 100 and stopped_s < 30
    steps = job.work_steps
    time.sleep(0.5)
    assert job.work_steps == steps  # no work after the end
    assert not thread_errors
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()], caplog.text
    history = HistoryStore(state.settings.database_url)  # the server recorded the job before it closed its database
    try:
        records, _ = history.page(limit=10)
        assert [(r.model_id, r.status) for r in records] == [("diffusion", "cancelled")]
    finally:
        history.close()


# ---------------------------------------------------------------------------------------------------- burst
def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _png(size: int, color: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _half_mask(size: int) -> bytes:
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (0, 0, size, size // 2))  # repaint the top half
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


async def _burst(url: str, count: int = 200) -> list[httpx.Response]:
    """`count` requests at once: image generations (two models, b64 and url), inpainting edits, jobs, and bad
    requests (unknown model, n = 0, a model of the wrong kind, malformed JSON, a non-image upload)."""
    image, mask = _png(8, 100), _half_mask(8)
    kinds = [
        lambda c, i: c.post("/v1/images/generations", json={"model": "gan", "n": 1 + i % 3, "seed": i}),
        lambda c, i: c.post("/v1/images/generations", json={"model": "vae", "response_format": "url"}),
        lambda c, i: c.post("/v1/images/edits", files={"image": ("i.png", image), "mask": ("m.png", mask)},
                            data={"model": "telea"}),
        lambda c, i: c.post("/v1/jobs", json={"type": "images.generations", "request": {"model": "gan", "seed": i}}),
        lambda c, i: c.post("/v1/images/generations", json={"model": "nope"}),
        lambda c, i: c.post("/v1/images/generations", json={"model": "gan", "n": 0}),
        lambda c, i: c.post("/v1/images/generations", json={"model": "gpt"}),
        lambda c, i: c.post("/v1/images/generations", content=b"{not json", headers={"content-type": "application/json"}),
        lambda c, i: c.post("/v1/images/edits", files={"image": ("i.png", b"junk"), "mask": ("m.png", mask)},
                            data={"model": "telea"}),
        lambda c, i: c.get("/v1/history?limit=5"),
    ]
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        return await asyncio.gather(*(kinds[i % len(kinds)](client, i) for i in range(count)))


def _check_burst(answers: list[httpx.Response]) -> int:
    """No 5xx; every 429 is a full queue with Retry-After; what was accepted is a real answer. The number of 429s."""
    statuses = [a.status_code for a in answers]
    assert not [s for s in statuses if s >= 500], statuses
    assert set(statuses) <= {200, 202, 404, 422, 429}, statuses
    full = [a for a in answers if a.status_code == 429]
    for answer in full:
        assert int(answer.headers["retry-after"]) >= 1
        assert "waiting" in answer.json()["error"]["message"]  # the queue's message, not a key limit
    for answer in answers:
        if answer.status_code == 200 and "data" in answer.json() and answer.request.url.path != "/v1/history":
            item = answer.json()["data"][0]
            assert "b64_json" in item or item["url"].startswith("/v1/files/")
            if "b64_json" in item:
                assert base64.b64decode(item["b64_json"]).startswith(b"\x89PNG")
    return len(full)


def test_a_burst_of_200_mixed_requests(make_app, live_server):
    """With a queue of 4 per model: no 5xx, 429 (with Retry-After) only from full queues, the server answers after,
    and its memory after a second identical burst is within 20 MiB of after the first (the first may grow the
    allocator's pools and the job and history caches; a leak per request would grow with every burst: 200
    requests x the 8x8 PNGs, tensors and bodies they make is well above that for any leak of a request's work)."""
    app = make_app("gan", "vae", "gpt", max_queue=4, batch_window_ms=20)
    with live_server(app) as server:
        asyncio.run(_burst(server.url, 20))  # warm: models, engines, pools
        gc.collect()
        before = _rss_mib()
        first = asyncio.run(_burst(server.url))
        gc.collect()
        after_first = _rss_mib()
        second = asyncio.run(_burst(server.url))
        gc.collect()
        after_second = _rss_mib()
        with httpx.Client(base_url=server.url, timeout=60) as client:
            assert client.get("/health").status_code == 200
            assert client.post("/v1/images/generations", json={"model": "gan", "n": 2}).status_code == 200
            assert client.get("/ready").status_code == 200
        assert server.thread.is_alive()
    refused = _check_burst(first) + _check_burst(second)
    assert refused > 0  # the small queue was exercised
    assert after_first - before < 150, (before, after_first)
    assert after_second - after_first < 20, (before, after_first, after_second)
    print(f"burst RSS MiB: before {before:.0f}, after one {after_first:.0f}, after two {after_second:.0f}; "
          f"429s {refused} of 400")


def test_the_same_burst_with_room_in_the_queues_is_never_refused(make_app, live_server):
    app = make_app("gan", "vae", "gpt", max_queue=256)
    with live_server(app) as server:
        answers = asyncio.run(_burst(server.url))
    assert _check_burst(answers) == 0
    by_kind = [(i, answers[i].status_code) for i in range(10)]
    assert sum(a.status_code in (200, 202) for a in answers) == 100, by_kind  # 5 of every 10 kinds are good
