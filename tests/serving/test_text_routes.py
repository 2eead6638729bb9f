"""Text routes through the official openai client against a real uvicorn server, and what a disconnect stops."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from aigckit.pipelines import TextPipeline
from aigckit.serving import create_app
from helpers import LiveServer


@pytest.fixture(scope="module")
def gpt_run(served_runs):
    """A character GPT trained a few steps on the pydoc text (its output is not English, but it is the model's)."""
    return served_runs["gpt"]


@pytest.fixture(scope="module")
def server(gpt_run, tmp_path_factory):
    app = create_app(runs=[gpt_run], data_dir=tmp_path_factory.mktemp("data"), api_keys={"k" * 16: "tester"},
                     precision="fp32")
    with LiveServer(app) as live:
        yield live


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="k" * 16, max_retries=0)


def test_models_list_through_the_openai_client(client):
    models = client.models.list().data
    assert [m.id for m in models] == ["gpt"]


def test_a_completion_equals_the_pipeline_with_the_same_seed(client, gpt_run):
    answer = client.completions.create(model="gpt", prompt="The ", max_tokens=24, seed=5, temperature=0.8,
                                       extra_body={"top_k": 20})
    expected = TextPipeline.load(gpt_run, precision="fp32").generate("The ", max_new_tokens=24, seed=5,
                                                                     temperature=0.8, top_k=20)
    assert answer.choices[0].text == expected
    assert answer.usage.prompt_tokens == 4 and answer.usage.completion_tokens == 24
    assert answer.usage.total_tokens == 28 and answer.choices[0].finish_reason == "length"


def test_n_choices_stop_strings_and_greedy(client):
    answer = client.completions.create(model="gpt", prompt="a", max_tokens=30, n=3, seed=1)
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert len({c.text for c in answer.choices}) > 1  # each choice its own seed
    greedy = [client.completions.create(model="gpt", prompt="the", max_tokens=20, temperature=0).choices[0].text
              for _ in range(2)]
    assert greedy[0] == greedy[1]
    stop = greedy[0][5:7]
    stopped = client.completions.create(model="gpt", prompt="the", max_tokens=20, temperature=0, stop=[stop])
    assert stopped.choices[0].text == greedy[0][:greedy[0].index(stop)]
    assert stopped.choices[0].finish_reason == "stop"


def test_streaming_completion_and_chat_end_in_done(client, server):
    pieces = list(client.completions.create(model="gpt", prompt="x", max_tokens=16, seed=3, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in pieces if c.choices)
    whole = client.completions.create(model="gpt", prompt="x", max_tokens=16, seed=3).choices[0].text
    assert text == whole and pieces[-1].usage.completion_tokens == 16
    chunks = list(client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}],
                                                 max_tokens=12, seed=2, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "length"
    with httpx.stream("POST", f"{server.url}/v1/completions", json={"model": "gpt", "prompt": "x", "max_tokens": 4,
                                                                     "stream": True},
                      headers={"Authorization": "Bearer " + "k" * 16}) as raw:
        lines = [line for line in raw.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"


def test_chat_reads_the_messages_as_plain_text(client, gpt_run):
    answer = client.chat.completions.create(model="gpt", max_tokens=10, seed=4, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say x"}])
    expected = TextPipeline.load(gpt_run, precision="fp32").generate("Be brief.\nSay x\n", max_new_tokens=10, seed=4)
    assert answer.choices[0].message.content == expected and answer.choices[0].message.role == "assistant"


def test_extensions_and_errors_through_the_client(client):
    marked = client.completions.create(model="gpt", prompt="a", max_tokens=8, seed=1,
                                       extra_body={"watermark": 42, "repetition_penalty": 1.3})
    assert len(marked.choices[0].text) > 0
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="a")
    with pytest.raises(openai.UnprocessableEntityError, match="max_tokens"):
        client.completions.create(model="gpt", prompt="a", max_tokens=100000)
    with pytest.raises(openai.UnprocessableEntityError, match="frequency_penalty"):
        client.completions.create(model="gpt", prompt="a", frequency_penalty=0.5)
    bad = openai.OpenAI(base_url=client.base_url, api_key="wrong-key-123", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_a_client_that_disconnects_from_a_stream_stops_its_work(server):
    state = server.server.config.app.state.aigckit
    with httpx.stream("POST", f"{server.url}/v1/completions", headers={"Authorization": "Bearer " + "k" * 16},
                      json={"model": "gpt", "prompt": "x", "max_tokens": 1000, "stream": True}) as raw:
        lines = raw.iter_lines()
        next(line for line in lines if line.startswith("data: "))  # the first piece arrived: the job runs
    # the connection is closed here
    job = max((j for j in state.jobs.jobs.values() if j.record.get("max_tokens") == 1000), key=lambda j: j.created)
    deadline = time.monotonic() + 10
    while job.status == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.status == "cancelled"
    produced = job.work_steps
    time.sleep(0.5)
    assert job.work_steps <= produced + 1 and produced < 1000  # no more tokens: the row left the batch
    assert state.engines["gpt"].active == 0


def test_a_transformers_folder_with_a_chat_template_uses_it(tmp_path):
    import json

    from fastapi.testclient import TestClient

    from helpers import save_tiny_transformers_model, tiny_gpt2_config

    folder = tmp_path / "tiny-chat"
    save_tiny_transformers_model(folder, tiny_gpt2_config())
    template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}<assistant>"
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                                              "chat_template": template}))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    with TestClient(create_app(runs=[folder], data_dir=tmp_path / "data", precision="fp32")) as client:
        answer = client.post("/v1/chat/completions", json={"model": "tiny-chat", "messages": messages,
                                                           "max_tokens": 6, "seed": 3})
    assert answer.status_code == 200, answer.text
    expected = TextPipeline.load(folder, precision="fp32").generate("<system>Be brief.\n<user>hi\n<assistant>",
                                                                    max_new_tokens=6, seed=3)
    assert answer.json()["choices"][0]["message"]["content"] == expected
