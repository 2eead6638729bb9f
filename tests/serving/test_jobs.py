"""Jobs: 202 before any work, distinct states, progress as a stream, cancellation that stops the work."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from aigckit.serving import create_app


@pytest.fixture(scope="module")
def diffusion_run(tmp_path_factory):
    """A tiny unconditional diffusion run with 1,000 training timesteps, so a job can run 1,000 sampler steps."""
    from aigckit.training import Trainer
    from helpers import tiny_config

    run = tmp_path_factory.mktemp("jobs") / "diffusion"
    Trainer(tiny_config({"name": "diffusion", "num_train_steps": 1000}), run, show_progress=False).fit()
    return run


@pytest.fixture()
def client(diffusion_run, tmp_path):
    with TestClient(create_app(runs=[diffusion_run], data_dir=tmp_path, max_queue=3, batch_window_ms=0)) as client:
        yield client


def submit(client, steps: int, n: int = 1) -> dict:
    answer = client.post("/v1/jobs", json={"type": "images.generations",
                                           "request": {"model": "diffusion", "n": n, "steps": steps,
                                                       "sampler": "ddpm"}})
    assert answer.status_code == 202, answer.text
    return answer.json()


def wait_for(client, job_id: str, condition, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if condition(job):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached the condition; last: {job}")


def test_a_job_is_answered_before_any_work_and_ends_done(client):
    job = submit(client, steps=20)
    assert job["status"] == "queued" and job["progress"]["step"] == 0 and job["result"] is None
    done = wait_for(client, job["id"], lambda j: j["status"] == "done")
    assert done["progress"] == {"step": 20, "total": 20}
    assert len(done["result"]["data"]) == 1 and done["started"] <= done["finished"]


def test_unknown_job_is_404_and_an_ended_job_cannot_be_cancelled(client):
    assert client.get("/v1/jobs/job-nope").status_code == 404
    assert client.delete("/v1/jobs/job-nope").status_code == 404
    job = submit(client, steps=2)
    wait_for(client, job["id"], lambda j: j["status"] == "done")
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 409


def test_cancelling_a_running_diffusion_job_stops_it_within_one_sampler_step(client):
    job = submit(client, steps=1000)
    running = wait_for(client, job["id"], lambda j: j["progress"]["step"] >= 3)
    assert running["status"] == "running"
    cancelled = client.delete(f"/v1/jobs/{job['id']}").json()
    assert cancelled["status"] == "cancelled"
    server_job = client.app.state.aigckit.jobs.get(job["id"])
    at_cancel = server_job.work_steps
    time.sleep(0.5)
    assert server_job.work_steps <= at_cancel + 1  # the sampler stopped: at most the step that was under way
    assert server_job.work_steps < 1000
    engine = client.app.state.aigckit.engines["diffusion"]
    assert engine.running == [] or all(j.cancelled.is_set() for j in engine.running)


def test_queue_positions_cancel_while_queued_and_429_beyond_the_queue(client):
    first = submit(client, steps=1000)
    wait_for(client, first["id"], lambda j: j["status"] == "running")
    queued = [submit(client, steps=1000, n=1) for _ in range(3)]
    # the running batch is closed: these wait in order
    assert [client.get(f"/v1/jobs/{j['id']}").json()["queue_position"] for j in queued] == [0, 1, 2]
    full = client.post("/v1/jobs", json={"type": "images.generations", "request": {"model": "diffusion"}})
    assert full.status_code == 429 and int(full.headers["retry-after"]) >= 1
    assert client.delete(f"/v1/jobs/{queued[1]['id']}").json()["status"] == "cancelled"
    assert client.get(f"/v1/jobs/{queued[2]['id']}").json()["queue_position"] == 1
    for job in [first, queued[0], queued[2]]:
        client.delete(f"/v1/jobs/{job['id']}")


def test_the_event_stream_reports_progress_then_the_end(client):
    job = submit(client, steps=10)
    events = []
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[len("event: "):]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[len("data: "):])))
    steps = [data["step"] for kind, data in events if kind == "progress"]
    assert steps == sorted(steps) and steps[-1] == 10
    assert events[-1][0] == "status" and events[-1][1]["status"] == "done"


def test_a_bad_job_request_is_refused_before_queueing(client):
    answer = client.post("/v1/jobs", json={"type": "images.generations", "request": {"model": "diffusion",
                                                                                     "steps": "many"}})
    assert answer.status_code == 422 and "request.steps" in answer.json()["error"]["message"]
    answer = client.post("/v1/jobs", json={"type": "videos", "request": {}})
    assert answer.status_code == 422


def test_a_job_past_the_time_limit_fails_with_a_timeout_and_stops(diffusion_run, tmp_path):
    with TestClient(create_app(runs=[diffusion_run], data_dir=tmp_path, request_timeout_s=0.5)) as client:
        job = submit(client, steps=1000)
        ended = wait_for(client, job["id"], lambda j: j["status"] != "queued" and j["status"] != "running")
        assert ended["status"] == "failed" and ended["error"]["type"] == "timeout_error"
        assert "time limit of 0.5 s" in ended["error"]["message"]
        server_job = client.app.state.aigckit.jobs.get(job["id"])
        at_end = server_job.work_steps
        time.sleep(0.3)
        assert server_job.work_steps <= at_end + 1 < 1000
        sync = client.post("/v1/images/generations", json={"model": "diffusion", "steps": 1000, "sampler": "ddpm"})
        assert sync.status_code == 504 and "time limit" in sync.json()["error"]["message"]


def test_jobs_and_history_belong_to_their_key(diffusion_run, tmp_path):
    keys = {"alice-key-0001": "alice", "bob-key-00002": "bob", "root-key-0003": "root"}
    app = create_app(runs=[diffusion_run], data_dir=tmp_path, api_keys=keys, admin_keys={"root"})
    with TestClient(app) as client:
        alice, bob, root = ({"Authorization": f"Bearer {k}"} for k in keys)
        job = client.post("/v1/jobs", headers=alice, json={"type": "images.generations",
                                                           "request": {"model": "diffusion", "steps": 2}}).json()
        assert client.get(f"/v1/jobs/{job['id']}", headers=bob).status_code == 404
        assert client.delete(f"/v1/jobs/{job['id']}", headers=bob).status_code == 404
        deadline = time.monotonic() + 60
        while client.get(f"/v1/jobs/{job['id']}", headers=alice).json()["status"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.get(f"/v1/jobs/{job['id']}", headers=root).status_code == 200
        deadline = time.monotonic() + 10
        while not client.get("/v1/history", headers=alice).json()["data"]:  # written beside the loop
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.get("/v1/history", headers=bob).json()["data"] == []
        assert [r["api_key_name"] for r in client.get("/v1/history", headers=root).json()["data"]] == ["alice"]
