"""Schemathesis against the app's own OpenAPI schema, in-process through the ASGI app: no server error (5xx) and no
answer that breaks the schema (status codes, content types, bodies, headers) for generated valid and invalid
requests, on every operation, text routes included."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from aigckit.serving import Limits, create_app  # noqa: E402

# Operations whose schema cannot say everything the server checks: a request valid by the schema may still be
# refused (422), so the "valid data is accepted" check does not apply to them; every other check does.
UNDESCRIBABLE = {
    "POST /v1/images/edits": "the uploads' bytes must be a readable image of the model's size",
    "POST /v1/images/stylize": "the uploads' bytes must be readable images; the style one is needed by AdaIN "
                               "models and refused by fast ones; a model must be a stylizer",
}
@pytest.fixture(scope="module")
def api_schema(served_runs, tmp_path_factory):
    """The schema of an app over every kind of run, with small limits so that generated requests stay quick."""
    app = create_app(runs=[served_runs[name] for name in ("diffusion", "gan", "vae", "gpt")], lazy=True,
                     data_dir=tmp_path_factory.mktemp("schema-data"), precision="fp32", max_queue=8,
                     request_timeout_s=20, limits=Limits(max_n=2, max_tokens=16, max_steps=3, max_prompt_chars=200))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


SERVED = ("diffusion", "gan", "vae", "gpt")


def _png(mask: bool) -> bytes:
    image = Image.new("L", (8, 8), 0 if mask else 90)
    if mask:
        image.paste(255, (0, 0, 8, 4))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _with_served_model(case, pick: int):
    """The case with its model id (body, job request or path) set to a served model of the right kind, and
    uploads that are 8x8 images, so that the request reaches the model's code instead of stopping at 404."""
    images, text = ("diffusion", "gan", "vae"), ("gpt",)
    body = case.body if isinstance(case.body, dict) else None
    if body is not None and "image" in body and "mask" in body:
        body["image"], body["mask"] = _png(False), _png(True)
    if body is not None and isinstance(body.get("request"), dict):
        kinds = images if body.get("type", "").startswith("images.") else text
        if "image" in body["request"] and "mask" in body["request"]:
            body["request"]["image"] = base64.b64encode(_png(False)).decode()
            body["request"]["mask"] = base64.b64encode(_png(True)).decode()
        body["request"]["model"] = kinds[pick % len(kinds)]
    elif body is not None and "model" in body:
        kinds = text if "completions" in case.operation.label else images
        body["model"] = kinds[pick % len(kinds)]
    if case.path_parameters and "model_id" in case.path_parameters:
        case.path_parameters["model_id"] = SERVED[pick % len(SERVED)]
    return case


def _run(api_schema, labels=None, *, excluded_for=None, examples: int = 25, served: bool = False,
         statuses: dict | None = None) -> dict[str, str]:
    """Generate `examples` requests per operation and run every check on the answers; failures by operation.
    `served`: only operations that name a model, with a served model's id; "valid data is accepted" is then not
    checked (what is valid depends on the model: its samplers, its size, its classes)."""
    failures = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if labels is not None and operation.label not in labels:
            continue
        excluded = [positive_data_acceptance] if served or operation.label in (excluded_for or {}) else []
        strategy = operation.as_strategy()
        if served:
            if "model" not in str(operation.definition.raw) and "{model_id}" not in operation.path:
                continue
            strategy = st.builds(_with_served_model, strategy, st.integers(0, 11))

        @given(case=strategy)
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def check(case):
            response = case.call_and_validate(excluded_checks=excluded)
            if statuses is not None:
                statuses.setdefault(operation.label, []).append(response.status_code)

        try:
            check()
        except Exception as error:  # noqa: BLE001  collected (an ExceptionGroup too): one run names them all
            failures[operation.label] = str(error)
    return failures


def test_the_api_keeps_to_its_schema(api_schema):
    """Every operation, 25 generated requests each (valid and invalid ones): every check of schemathesis passes —
    no 5xx, documented status codes and content types, bodies that match their schemas."""
    labels = {result.ok().label for result in api_schema.get_all_operations()}
    assert {"POST /v1/completions", "POST /v1/chat/completions", "POST /v1/images/generations", "GET /v1/usage",
            "GET /metrics", "DELETE /v1/jobs/{job_id}"} <= labels
    failures = _run(api_schema, excluded_for=UNDESCRIBABLE)
    assert not failures, "\n\n".join(f"{label}: {error}" for label, error in failures.items())


def test_requests_to_served_models_never_fail_the_server(api_schema):
    """The same with the model ids of served models: generated options reach every family's code (sampler, steps,
    labels, sizes, text options) and are answered without a 5xx and within the schema."""
    statuses: dict[str, list[int]] = {}
    failures = _run(api_schema, served=True, statuses=statuses)
    assert not failures, "\n\n".join(f"{label}: {error}" for label, error in failures.items())
    for label in ("POST /v1/completions", "POST /v1/chat/completions", "POST /v1/images/generations",
                  "POST /v1/images/edits"):
        assert 200 in statuses[label], (label, statuses[label])  # the models really ran
    assert 202 in statuses["POST /v1/jobs"]


def test_extreme_sampling_options_give_text_or_a_clear_refusal(api_schema):
    """A temperature or top_p far below float32's range still samples (the most likely tokens); a repetition
    penalty outside [0.01, 100] is refused in one line."""
    from fastapi.testclient import TestClient

    with TestClient(api_schema.app) as client:
        answers = [client.post("/v1/completions", json={"model": "gpt", "prompt": "a", "max_tokens": 4, **extra})
                   for extra in ({"top_p": 5e-324}, {"temperature": 1e-122}, {"repetition_penalty": 1e-300})]
        documented = client.get("/openapi.json").json()["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]
    assert [answer.status_code for answer in answers] == [200, 200, 422], [a.text for a in answers]
    assert "repetition_penalty" in answers[2].json()["error"]["message"]
    assert "text/event-stream" in documented["content"]
