"""Security of the server: API keys on every route, per-key rate and concurrency limits, usage, request limits,
model ids that never become paths, file names, CORS, and no stack trace in any answer."""

from __future__ import annotations

import io
import re
import sys
import time
from contextlib import contextmanager

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from aigckit.errors import AigcError
from aigckit.serving import create_app
from aigckit.serving import security
from aigckit.serving.security import parse_key_lines
from aigckit.serving.settings import KeyLimits

ALICE, BOB, ROOT = "alice-key-" + "a" * 20, "bob-key-" + "b" * 20, "root-key-" + "r" * 20
KEYS = {ALICE: "alice", BOB: "bob", ROOT: "root"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def one_line_error(response: httpx.Response, status: int) -> str:
    """The OpenAI-shaped error of `response`, checked: the status, one line, no trace; its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == status
    message = body["error"]["message"]
    assert "\n" not in message and "Traceback" not in response.text and 'File "' not in response.text
    return message


@pytest.fixture(scope="module")
def app_factory(served_runs, tmp_path_factory):
    """create_app over the served runs, each app with a fresh data folder; fields override the settings."""

    def make(**fields):
        fields.setdefault("runs", [served_runs[name] for name in ("diffusion", "gan", "vae", "gpt")])
        fields.setdefault("data_dir", tmp_path_factory.mktemp("data"))
        fields.setdefault("precision", "fp32")
        return create_app(**fields)

    return make


@pytest.fixture(scope="module")
def keyed(app_factory):
    """A started app with three keys (root is the admin) and a client without a key."""
    with TestClient(app_factory(api_keys=KEYS, admin_keys={"root"})) as client:
        yield client


# ---------------------------------------------------------------------------------------------------- keys
def test_key_lines_give_names_and_own_limits():
    keys, limits = parse_key_lines(["# keys", "", "alice:" + ALICE, "bob:" + BOB + ":30:2", "carol:" + "c" * 12 + "::1",
                                    ROOT], "keys.txt")
    assert keys[ALICE] == "alice" and keys[BOB] == "bob" and keys["c" * 12] == "carol"
    assert re.fullmatch(r"key-[0-9a-f]{8}", keys[ROOT])
    assert parse_key_lines([ROOT], "AIGCKIT_API_KEYS")[0] == {ROOT: keys[ROOT]}  # a bare key has one name everywhere
    assert limits == {"bob": KeyLimits(rate_per_minute=30.0, concurrency=2), "carol": KeyLimits(concurrency=1)}


@pytest.mark.parametrize("line, words", [
    ("alice:short", "shorter than 8"),
    ("a:" + "d" * 10 + ":60", "2 colons"),
    ("a:" + "d" * 10 + ":60:1:1", "4 colons"),
    (":" + ALICE, "empty name"),
    ("bob:" + BOB + ":fast:2", "not a positive float"),
    ("bob:" + BOB + ":60:0", "not a positive int"),
    ("bob:" + BOB + ":-1:", "not a positive float"),
])
def test_bad_key_lines_are_refused_in_one_line(line, words):
    with pytest.raises(AigcError, match=words) as caught:
        parse_key_lines([line], "keys.txt")
    assert "\n" not in str(caught.value) and ALICE not in str(caught.value) and BOB not in str(caught.value)


def test_two_keys_with_one_name_are_refused():
    with pytest.raises(AigcError, match="two keys in keys.txt are named 'alice'"):
        parse_key_lines(["alice:" + ALICE, "alice:" + BOB], "keys.txt")


@pytest.mark.parametrize("fields, words", [
    ({"api_keys": KEYS, "admin_keys": {"nobody"}}, "admin keys nobody are no key's name"),
    ({"api_keys": KEYS, "rate_per_minute": 0}, "rate_per_minute is 0"),
    ({"api_keys": KEYS, "concurrency_per_key": -2}, "concurrency_per_key is -2"),
    ({"api_keys": KEYS, "key_limits": {"eve": KeyLimits(concurrency=1)}}, "no key has that name"),
])
def test_bad_security_settings_are_refused_before_anything_starts(app_factory, fields, words):
    with pytest.raises(AigcError, match=words):
        app_factory(**fields)


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_route_but_health_and_the_page_needs_a_key(keyed):
    schema = keyed.get("/openapi.json", headers=bearer(ALICE)).json()
    routes = [(path, method.upper()) for path, item in schema["paths"].items() for method in item]
    routes += [("/openapi.json", "GET")]  # not in the schema itself
    assert {"/metrics", "/ready", "/v1/usage", "/v1/files/{name}", "/v1/jobs/{job_id}/events"} <= {p for p, _ in routes}
    checked = 0
    for path, method in routes:
        response = keyed.request(method, _fill(path))
        if path == "/health":
            assert response.status_code == 200
            continue
        assert one_line_error(response, 401).startswith("a valid API key is needed"), (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
        checked += 1
    assert checked >= 15
    # a wrong key, a wrong scheme, the key's name, or the key with something more: 401 as well
    for headers in (bearer(ALICE[:-1] + "x"), {"Authorization": ALICE}, {"Authorization": f"Basic {ALICE}"},
                    bearer("alice"), bearer(ALICE + "x"), bearer("")):
        one_line_error(keyed.get("/v1/models", headers=headers), 401)
    assert keyed.get("/v1/models", headers=bearer(ALICE)).status_code == 200
    assert keyed.get("/openapi.json", headers=bearer(BOB)).json()["info"]["title"] == "aigckit"
    # only what no route matches falls to the page: it needs no key, and says nothing but 404 or the page
    assert keyed.get("/").status_code != 401
    assert keyed.get("/no-such-thing").status_code == 404


def test_keys_are_compared_in_constant_time_over_every_key(keyed, monkeypatch):
    calls = []
    real = security.hmac.compare_digest

    def counting(a, b):
        calls.append(len(b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", counting)
    for key in (ALICE, ROOT, "wrong-key-" + "w" * 20):
        calls.clear()
        keyed.get("/v1/models", headers=bearer(key))
        assert len(calls) == len(KEYS)  # the first key matching does not stop the comparison


# ---------------------------------------------------------------------------------------------------- limits per key
def test_each_key_has_its_own_token_bucket(app_factory):
    app = app_factory(api_keys=KEYS, rate_per_minute=6, rate_burst=2,
                      key_limits={"bob": KeyLimits(rate_per_minute=6000)})
    with TestClient(app) as client:
        assert [client.get("/v1/models", headers=bearer(ALICE)).status_code for _ in range(2)] == [200, 200]
        refused = client.get("/v1/models", headers=bearer(ALICE))
        assert "6 requests a minute" in one_line_error(refused, 429)
        assert 1 <= int(refused.headers["retry-after"]) <= 10  # one token comes back every 10 s
        assert client.get("/v1/models", headers=bearer(ROOT)).status_code == 200  # root's bucket is its own
        assert all(client.get("/v1/models", headers=bearer(BOB)).status_code == 200 for _ in range(20))
        assert client.get("/health").status_code == 200  # liveness is never limited
        guard = app.state.key_guard
        guard._buckets["alice"].updated -= 10  # ten seconds later one token is back
        assert client.get("/v1/models", headers=bearer(ALICE)).status_code == 200
        assert guard.usage["alice"].rejected == 1 and guard.usage["alice"].requests == 3


def test_a_stream_holds_its_key_slot_until_it_ends(app_factory, served_runs, live_server):
    """concurrency 1: while alice reads a long job's event stream her other requests get 429, bob's do not (and bob
    cannot touch her job; an admin can); when the stream ends her slot is free again."""
    app = app_factory(api_keys=KEYS, admin_keys={"root"}, concurrency_per_key=1, runs=[served_runs["diffusion"]])
    long_job = {"type": "images.generations",
                "request": {"model": "diffusion", "n": 16, "sampler": "ddpm", "steps": 100}}
    with live_server(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        job = client.post("/v1/jobs", json=long_job, headers=bearer(ALICE)).json()
        with client.stream("GET", f"/v1/jobs/{job['id']}/events", headers=bearer(ALICE)) as events:
            lines = events.iter_lines()
            assert next(lines) == "event: status"
            refused = client.get("/v1/history", headers=bearer(ALICE))
            assert "1 requests in flight" in one_line_error(refused, 429) and refused.headers["retry-after"] == "1"
            assert client.get("/v1/history", headers=bearer(BOB)).status_code == 200
            assert client.delete(f"/v1/jobs/{job['id']}", headers=bearer(BOB)).status_code == 404  # not bob's
            assert client.delete(f"/v1/jobs/{job['id']}", headers=bearer(ROOT)).json()["status"] == "cancelled"
            assert any('"status": "cancelled"' in line for line in lines)  # the stream ends with the job
        deadline = time.monotonic() + 10
        while app.state.key_guard.usage["alice"].in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/v1/history", headers=bearer(ALICE)).status_code == 200


def test_usage_counts_requests_tokens_and_images_per_key_for_admins_only(app_factory):
    app = app_factory(api_keys=KEYS, admin_keys={"root"})
    with TestClient(app) as client:
        assert client.post("/v1/images/generations", json={"model": "gan", "n": 3, "seed": 1},
                           headers=bearer(ALICE)).status_code == 200
        assert client.post("/v1/images/generations", json={"model": "vae", "n": 2}, headers=bearer(ALICE)).status_code == 200
        text = client.post("/v1/completions", json={"model": "gpt", "prompt": "The ", "max_tokens": 5},
                           headers=bearer(BOB))
        assert text.status_code == 200, text.text
        client.get("/v1/models", headers=bearer(BOB))
        assert "admin keys" in one_line_error(client.get("/v1/usage", headers=bearer(ALICE)), 403)
        report = client.get("/v1/usage", headers=bearer(ROOT))
        assert report.status_code == 200
        usage = {row["key"]: row for row in report.json()["data"]}
    assert set(usage) == {"alice", "bob", "root"}
    assert (usage["alice"]["requests"], usage["alice"]["images"], usage["alice"]["tokens"]) == (3, 5, 0)
    assert (usage["bob"]["requests"], usage["bob"]["images"]) == (2, 0)
    assert usage["bob"]["tokens"] == text.json()["usage"]["completion_tokens"] == 5
    assert usage["root"]["requests"] == 1 and usage["root"]["in_flight"] == 1  # the report's own request
    assert ALICE not in report.text and BOB not in report.text and ROOT not in report.text


def test_a_server_without_keys_counts_everyone_as_anonymous(app_factory):
    with TestClient(app_factory(runs=[])) as client:
        client.get("/v1/models")
        usage = client.get("/v1/usage").json()["data"]
    assert [(row["key"], row["requests"]) for row in usage] == [("anonymous", 2)]


# ---------------------------------------------------------------------------------------------------- request limits
def _png(size: tuple[int, int], color: int = 128) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def limited(app_factory):
    from aigckit.serving import Limits

    limits = Limits(max_upload_bytes=2000, max_image_side=64, max_n=4, max_tokens=32, max_prompt_chars=100,
                    max_steps=50)
    with TestClient(app_factory(limits=limits)) as client:
        yield client


def _edit(client, image: bytes, mask: bytes, **form):
    return client.post("/v1/images/edits", files={"image": ("i.png", image, "image/png"),
                                                  "mask": ("m.png", mask, "image/png")},
                       data={"model": "telea", **form})


@pytest.mark.parametrize("ask, status, words", [
    (lambda c: c.post("/v1/images/generations", json={"model": "gan", "n": 5}), 422, "n is 5; this server makes at most 4"),
    (lambda c: c.post("/v1/images/generations", json={"model": "diffusion", "steps": 51}), 422, "at most 50 sampler steps"),
    (lambda c: c.post("/v1/images/generations", json={"model": "gan", "n": 0}), 422, "n: "),
    (lambda c: c.post("/v1/images/generations", json={"model": "gan", "size": "16x16"}), 422, "makes 8x8 images"),
    (lambda c: c.post("/v1/completions", json={"model": "gpt", "prompt": "x", "max_tokens": 33}), 422, "at most 32"),
    (lambda c: c.post("/v1/completions", json={"model": "gpt", "prompt": "x" * 101}), 413, "limit of 100 characters"),
    (lambda c: c.post("/v1/chat/completions", json={"model": "gpt", "messages": [{"role": "user", "content": "y" * 101}]}),
     413, "limit of 100 characters"),
    (lambda c: c.post("/v1/completions", json={"model": "gpt", "prompt": ["a", "b"], "n": 3}), 422, "6 choices asked"),
    (lambda c: c.post("/v1/jobs", json={"type": "completions", "request": {"model": "gpt", "prompt": "x", "max_tokens": 99}}),
     422, "at most 32"),
    (lambda c: _edit(c, _png((8, 8)) + b"\0" * 2000, _png((8, 8))), 413, "image is larger than this server's limit of 2000 bytes"),
    (lambda c: _edit(c, _png((8, 8)), _png((65, 8))), 422, "mask is 65x8 pixels; the server takes at most 64"),
    (lambda c: _edit(c, b"not an image at all", _png((8, 8))), 422, "not an image the server can read"),
    (lambda c: _edit(c, _png((8, 8)), _png((8, 8)), n="5"), 422, "at most 4 images"),
])
def test_request_limits_answer_in_one_clear_line(limited, ask, status, words):
    assert words in one_line_error(ask(limited), status)


# ---------------------------------------------------------------------------------------------------- model ids
@contextmanager
def opened_files():
    """Every path opened or listed by this process while the block runs (an audit hook; it stays installed, idle)."""
    seen: list[str] = []
    state = opened_files.__dict__.setdefault("state", {"active": None})
    if not opened_files.__dict__.get("installed"):
        def hook(event, args):
            target = state["active"]
            if target is not None and event in ("open", "os.listdir", "os.scandir", "os.chdir") and args:
                target.append(str(args[0]))
        sys.addaudithook(hook)
        opened_files.installed = True
    state["active"] = seen
    try:
        yield seen
    finally:
        state["active"] = None


def test_model_ids_never_reach_the_file_system(served_runs, app_factory, tmp_path):
    """An id that is a path — relative, absolute, or a real run folder that is not served — is an unknown model
    (404), and nothing under that folder (or /etc) is opened or listed while the server answers."""
    outside = tmp_path / "not-served"
    import shutil

    shutil.copytree(served_runs["gan"], outside)
    app = app_factory(runs=[served_runs["diffusion"]])
    with TestClient(app) as client:
        image = _png((8, 8))
        for model_id in ("../../etc/passwd", "/etc/passwd", str(outside), f"{outside}/../not-served", "not-served",
                         "diffusion/../not-served", "~", ".", ""):
            with opened_files() as seen:
                answers = [
                    client.post("/v1/images/generations", json={"model": model_id}),
                    client.post("/v1/completions", json={"model": model_id, "prompt": "x"}),
                    client.post("/v1/jobs", json={"type": "images.generations", "request": {"model": model_id}}),
                    client.post("/v1/images/edits", files={"image": ("i.png", image), "mask": ("m.png", image)},
                                data={"model": model_id}),
                ]
            for answer in answers:
                assert answer.status_code in (404, 422), (model_id, answer.text)
                if model_id:
                    assert answer.status_code == 404 and "no model" in one_line_error(answer, 404)
            touched = [p for p in seen if p.startswith((str(outside), "/etc")) or "passwd" in p]
            assert not touched, (model_id, touched)
        assert client.get("/v1/models/..%2F..%2Fetc%2Fpasswd").status_code == 404
        assert client.get(f"/v1/models/{outside.name}").status_code == 404
    assert "not-served" not in app.state.aigckit.catalog.models


def test_files_are_served_by_sha256_name_only(app_factory):
    app = app_factory(runs=[])
    store = app.state.aigckit.images
    sha = store.put(_png((8, 8), 7))
    with TestClient(app) as client:
        good = client.get(f"/v1/files/{sha}.png")
        assert good.status_code == 200 and good.content == _png((8, 8), 7)
        for name in (f"{sha.upper()}.PNG", f"{sha[:-1]}.png", f"{sha}0.png", f"{sha}.png.png", f"{sha}.jpg",
                     "..%2F..%2F..%2Fetc%2Fpasswd", f"..%2F{sha}.png", "%2Fetc%2Fpasswd", "history.db",
                     f"{'0' * 64}.png", f"{sha[:2]}%2F{sha}.png"):
            answer = client.get(f"/v1/files/{name}")
            assert answer.status_code == 404, name
            assert answer.headers["content-type"] == "application/json"


def test_a_file_name_without_png_is_refused(app_factory):
    app = app_factory(runs=[])
    sha = app.state.aigckit.images.put(_png((8, 8), 9))
    with TestClient(app) as client:
        assert client.get(f"/v1/files/{sha}").status_code == 404


# ---------------------------------------------------------------------------------------------------- CORS, crashes
def test_cors_is_off_unless_an_origin_is_configured(app_factory):
    origin = "https://app.example"
    with TestClient(app_factory(runs=[])) as client:
        plain = client.get("/health", headers={"Origin": origin})
        preflight = client.options("/v1/models", headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in plain.headers
        assert "access-control-allow-origin" not in preflight.headers
    with TestClient(app_factory(runs=[], cors_origins=[origin], api_keys=KEYS)) as client:
        allowed = client.get("/v1/models", headers={"Origin": origin, **bearer(ALICE)})
        assert allowed.headers["access-control-allow-origin"] == origin
        preflight = client.options("/v1/models", headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                                                          "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin
        other = client.get("/v1/models", headers={"Origin": "https://evil.example", **bearer(ALICE)})
        assert "access-control-allow-origin" not in other.headers


def test_an_internal_error_answers_one_line_without_a_trace(app_factory, monkeypatch, caplog):
    app = app_factory()
    state = app.state.aigckit

    def broken(**kwargs):
        raise RuntimeError("secret internal detail /home/user/.ssh/id_rsa\nline two")

    with TestClient(app, raise_server_exceptions=False) as client:
        monkeypatch.setattr(state.history, "page", broken)
        answer = client.get("/v1/history")
        message = one_line_error(answer, 500)
        assert message == "internal server error; the server log has the details"
        assert "secret" not in answer.text and "RuntimeError" not in answer.text
        # a model that fails inside its engine thread: the request fails in one line, the server keeps serving
        pipeline = state.catalog.get("gan").get()
        monkeypatch.setattr(type(pipeline), "sample", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom\nx")))
        failed = client.post("/v1/images/generations", json={"model": "gan"})
        assert "boom" not in one_line_error(failed, 500)
        assert client.get("/health").status_code == 200
    assert any("secret internal detail" in r.getMessage() or (r.exc_info and "secret" in str(r.exc_info[1]))
               for r in caplog.records)  # the details go to the server log
