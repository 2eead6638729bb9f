"""POST /v1/audio/speech on a real server, called with the official `openai` client: a spoken-digit diffusion run
(FSDD log-mels, trained 2 steps) says numbers in every format, and refuses what it cannot do."""

from __future__ import annotations

import io
import json

import httpx
import openai
import pytest
import soundfile

from aigckit.serving import create_app
from helpers import LiveServer, needs_fsdd

pytestmark = needs_fsdd


@pytest.fixture(scope="module")
def server(speech_run, served_runs, tmp_path_factory):
    app = create_app(runs=[speech_run, served_runs["gan"]], data_dir=tmp_path_factory.mktemp("speech-server"),
                     precision="fp32")
    with LiveServer(app) as live:
        yield live


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)


def test_the_openai_client_gets_a_spoken_number(client):
    response = client.audio.speech.create(model="fsdd-diffusion", voice="default", input="4 0 7",
                                          response_format="wav", extra_body={"seed": 5, "iterations": 8})
    samples, rate = soundfile.read(io.BytesIO(response.content))
    made = json.loads(response.response.headers["X-Aigckit"])
    assert response.response.headers["content-type"] == "audio/wav" and rate == 8000
    assert made["digits"] == [4, 0, 7] and made["seed"] == 5 and len(made["checkpoint_sha256"]) == 64
    assert abs(len(samples) / rate - made["seconds"]) < 1e-3 and 0.2 < made["seconds"] <= 3 * 1.024 + 0.3
    again = client.audio.speech.create(model="fsdd-diffusion", voice="default", input="407", response_format="wav",
                                       extra_body={"seed": 5, "iterations": 8})
    assert again.content == response.content  # the same seed says the same number


@pytest.mark.parametrize("response_format, media_type", [("mp3", "audio/mpeg"), ("flac", "audio/flac"),
                                                         ("opus", "audio/ogg")])
def test_every_encoded_format_decodes_to_the_same_length(client, response_format, media_type):
    response = client.audio.speech.create(model="fsdd-diffusion", voice="default", input="12",
                                          response_format=response_format, extra_body={"seed": 1, "iterations": 4})
    assert response.response.headers["content-type"] == media_type
    samples, rate = soundfile.read(io.BytesIO(response.content))
    made = json.loads(response.response.headers["X-Aigckit"])
    assert rate == 8000 and abs(len(samples) / rate - made["seconds"]) < 0.1  # MP3 and Opus pad a few frames


def test_pcm_is_raw_16_bit_samples(server):
    common = {"model": "fsdd-diffusion", "input": "3", "seed": 2, "iterations": 4}
    wav = httpx.post(f"{server.url}/v1/audio/speech", json={**common, "response_format": "wav"}, timeout=60)
    pcm = httpx.post(f"{server.url}/v1/audio/speech", json={**common, "response_format": "pcm"}, timeout=60)
    assert pcm.status_code == 200 and pcm.headers["content-type"] == "audio/pcm"
    assert pcm.content == wav.content[44:]  # a WAV is a 44-byte header and the same 16-bit little-endian samples


def test_what_cannot_be_said_is_refused_in_one_line(client):
    cases = [({"model": "fsdd-diffusion", "input": "4 x 2", "voice": "default"}, "say digits"),
             ({"model": "fsdd-diffusion", "input": "42", "voice": "alloy"}, "one voice"),
             ({"model": "fsdd-diffusion", "input": "42", "voice": "default", "speed": 1.5}, "speed"),
             ({"model": "fsdd-diffusion", "input": "4" * 17, "voice": "default"}, "at most 16"),
             ({"model": "gan", "input": "42", "voice": "default"}, "not trained on spoken audio")]
    for arguments, message in cases:
        with pytest.raises(openai.UnprocessableEntityError, match=message):
            client.audio.speech.create(**arguments)
    with pytest.raises(openai.NotFoundError, match="no model"):
        client.audio.speech.create(model="nobody", input="1", voice="default")


def test_models_say_which_can_speak(client):
    listed = {m.id: m.model_extra["aigckit"] for m in client.models.list().data}
    assert listed["fsdd-diffusion"]["speech"] == {"rate": 8000} and "speech" not in listed["gan"]


@pytest.mark.parametrize("vocoder", ["learned", "vocos"])
def test_a_trained_vocoder_is_used_once_it_is_trained(client, vocoder_cache, tmp_path, monkeypatch, vocoder):
    monkeypatch.setenv("AIGCKIT_CACHE", str(tmp_path))  # an empty cache: no vocoder trained
    with pytest.raises(openai.UnprocessableEntityError, match=f"no {vocoder} vocoder yet"):
        client.audio.speech.create(model="fsdd-diffusion", voice="default", input="1",
                                   extra_body={"vocoder": vocoder})
    monkeypatch.setenv("AIGCKIT_CACHE", str(vocoder_cache))
    response = client.audio.speech.create(model="fsdd-diffusion", voice="default", input="1", response_format="wav",
                                          extra_body={"vocoder": vocoder, "iterations": 4, "seed": 0})
    assert json.loads(response.response.headers["X-Aigckit"])["vocoder"].startswith(f"{vocoder} (sha256 ")
