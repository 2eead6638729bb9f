"""The web page at "/", driven in a real browser (Playwright + Debian's chromium) against a real uvicorn server.

Skipped, with the reason, when no Chromium is found. Screenshots land under pytest's tmp dir (their paths are printed).
`AIGCKIT_PAGE_SCREENSHOT=1` also rewrites docs/serve-page.png from a better-trained diffusion model (~30 s more).
"""

from __future__ import annotations

import base64
import email
import hashlib
import io
import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from PIL import Image

from helpers import FSDD, LiveServer, needs_fsdd, needs_mnist

CHROMIUM = os.environ.get("AIGCKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (apt-get install chromium, or set "
                                                          "AIGCKIT_CHROMIUM): the web page's browser tests are skipped")
KEY = "page-test-key-0123"
BIG_SEED = 2**53 - 100  # the largest seeds the server takes are exact in JavaScript numbers too
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A class-conditional tiny diffusion model on digits, a char GPT on pydoc, and an AdaIN and a fast-style
    network on the bundled photos, a few steps each."""
    from aigckit.training import Trainer
    from helpers import pydoc_lm_config, tiny_config

    root = tmp_path_factory.mktemp("page-runs")
    stylizer = {"data": {"name": "photos", "image_size": 16},
                "train": {"batch_size": 2, "max_steps": 2, "use_ema": False}}
    configs = {"digits-diffusion": tiny_config({"name": "diffusion", "conditional": True}, train={"max_steps": 2}),
               "pydoc-gpt": pydoc_lm_config({"name": "gpt"}, max_steps=4),
               "photos-adain": tiny_config({"name": "adain", "features": "random"}, **stylizer),
               "photos-fast-style": tiny_config({"name": "fast-style", "features": "random"}, **stylizer)}
    for name, config in configs.items():
        Trainer(config, root / name, show_progress=False).fit()
    return {name: root / name for name in configs}


@pytest.fixture(scope="module")
def server(runs, request, tmp_path_factory):
    """The runs above, and the spoken-digit run (fsdd-diffusion) where ../shared/data/fsdd is here."""
    from aigckit.serving import create_app

    speech = [request.getfixturevalue("speech_run")] if (FSDD / "recordings").is_dir() else []
    app = create_app(runs=[*runs.values(), *speech], data_dir=tmp_path_factory.mktemp("page-data"))
    with LiveServer(app) as live:
        yield live


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("page-screenshots")


class Tab:
    """A fresh browser page that may talk only to 127.0.0.1; it records console errors and outside requests."""

    def __init__(self, browser, shots: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1200, "height": 900})
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.shots = shots
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(60_000)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _route(self, route) -> None:
        url = urlparse(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname != "127.0.0.1":
            self.outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    def shot(self, name: str) -> None:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")

    def open(self, url: str, model: str | None = None):
        self.page.goto(url)
        self.page.wait_for_function("document.querySelectorAll('#model option').length > 0")
        if model is not None:
            self.page.select_option("#model", model)
        return self.page


@pytest.fixture
def tab(browser, shots):
    opened = Tab(browser, shots)
    yield opened
    opened.context.close()
    assert opened.outside == [], f"the page tried to reach other hosts: {opened.outside}"


def record_values(page, selector: str, script: str) -> None:
    """Keep every value `script` (a function of the element) takes in window.seen, as the element changes."""
    page.evaluate(f"""() => {{
        const element = document.querySelector({selector!r});
        const read = {script};
        window.seen = [read(element)];
        new MutationObserver(() => window.seen.push(read(element)))
            .observe(element, {{attributes: true, childList: true, subtree: true, characterData: true}});
    }}""")


def wait_for_images(page, where: str, n: int) -> None:
    """Until `where` shows n images; an error shown instead fails at once with its message."""
    page.wait_for_function(f"document.querySelectorAll('{where} img').length === {n} || "
                           "!document.querySelector('#error').hidden")
    assert page.is_hidden("#error"), page.inner_text("#error")


def png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.int16)


def test_page_loads_offline_with_the_served_models(server, tab):
    page = tab.open(server.url)
    assert page.title() == "aigckit"
    options = page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")
    speech = ["fsdd-diffusion"] if (FSDD / "recordings").is_dir() else []
    assert sorted(options) == sorted(["digits-diffusion", "photos-adain", "photos-fast-style", "pydoc-gpt", *speech])
    page.select_option("#model", "digits-diffusion")
    assert page.is_visible("#image-form") and page.is_visible("#inpaint-form") and page.is_hidden("#text-form")
    assert "8×8" in page.inner_text("#model-info") and "10 classes" in page.inner_text("#model-info")
    # the family's options: sampler, steps, guidance (conditional), eta only for ddim
    assert page.eval_on_selector_all("#option-sampler option", "os => os.map(o => o.value)") == \
        ["ddpm", "ddim", "dpm-solver++"]
    assert page.is_visible("#option-guidance") and page.is_hidden("#option-eta")
    page.select_option("#option-sampler", "ddim")
    assert page.is_visible("#option-eta")
    assert page.eval_on_selector_all("#label option", "os => os.length") == 11  # mixed + 10 classes
    for field in ("n", "seed", "label", "option-steps", "option-sampler", "api-key"):
        assert page.locator(f"label[for='{field}']").count() == 1, f"#{field} has no label"
    tab.shot("page-image-model")
    page.select_option("#model", "pydoc-gpt")
    assert page.is_visible("#text-form") and page.is_hidden("#image-form") and page.is_hidden("#inpaint-form")
    assert tab.errors == []
    for name in ("index.html", "app.js", "style.css"):  # nothing fetched from elsewhere
        text = (ROOT / "src/aigckit/serving/static" / name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


def test_generate_images_shows_progress_then_a_gallery_with_metadata(server, tab):
    page = tab.open(server.url, "digits-diffusion")
    sha = httpx.get(f"{server.url}/v1/models").json()["data"][0]["aigckit"]["checkpoint_sha256"]
    page.select_option("#option-sampler", "ddpm")
    page.fill("#option-steps", "100")  # enough that the page subscribes to the job's events before it ends
    page.fill("#n", "4")
    page.fill("#seed", str(BIG_SEED))
    page.select_option("#label", "3")
    record_values(page, "#progress", "e => e.value / e.max")
    page.click("#generate")
    wait_for_images(page, "#gallery", 4)
    seen = page.evaluate("window.seen")
    moving = sorted({v for v in seen if 0 < v < 1})
    assert len(moving) >= 3, f"the progress bar did not move step by step: {seen}"
    assert seen[-1] == 1
    assert page.inner_text("#job-status").startswith("done in")
    images = page.locator("#gallery img")
    assert images.evaluate_all("is => is.map(i => [i.naturalWidth, i.complete])") == [[8, True]] * 4
    assert images.first.bounding_box()["width"] >= 64  # drawn enlarged, pixels kept sharp
    assert images.first.evaluate("i => getComputedStyle(i).imageRendering") == "pixelated"
    hover = page.get_attribute("#gallery .thumb >> nth=1", "title")
    assert f"seed: {BIG_SEED + 1}" in hover and "label: 3" in hover and f"checkpoint_sha256: {sha}" in hover
    page.click("#gallery .thumb >> nth=0")
    meta = dict(zip(page.locator("#meta dt").all_inner_texts(), page.locator("#meta dd").all_inner_texts()))
    assert meta["seed"] == str(BIG_SEED) and meta["label"] == "3" and meta["sampler"] == "ddpm"
    assert meta["steps"] == "100" and meta["checkpoint_sha256"] == sha
    tab.shot("page-gallery")
    assert tab.errors == []


def test_cancel_stops_a_running_job(server, tab):
    page = tab.open(server.url, "digits-diffusion")
    page.select_option("#option-sampler", "ddpm")
    page.fill("#option-steps", "100")
    page.fill("#n", "16")
    with page.expect_response(lambda r: r.url.endswith("/v1/jobs") and r.request.method == "POST") as created:
        page.click("#generate")
    job_id = created.value.json()["id"]
    page.wait_for_function("document.querySelector('#progress').value > 0")
    page.click("#cancel")
    page.wait_for_function("document.querySelector('#job-status').textContent === 'cancelled'")
    job = httpx.get(f"{server.url}/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["progress"]["step"] < 100
    assert page.locator("#gallery img").count() == 0
    assert page.is_enabled("#generate") and page.is_disabled("#cancel")
    assert tab.errors == []


def _multipart(request) -> dict[str, bytes]:
    message = email.message_from_bytes(f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
                                       + request.post_data_buffer)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.get_payload()}


def test_a_mask_drawn_on_a_gallery_image_is_inpainted(server, tab, tmp_path):
    page = tab.open(server.url, "digits-diffusion")
    page.fill("#n", "1")
    page.fill("#seed", "11")
    page.click("#generate")
    wait_for_images(page, "#gallery", 1)
    page.click("#gallery .thumb")
    page.click("#use-for-inpaint")
    page.wait_for_function("!document.querySelector('#inpaint').disabled")
    box = page.locator("#mask").bounding_box()  # 8x8 pixels drawn large: paint a stroke across rows 3-4
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.45)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.5, steps=8)
    page.mouse.up()
    mask = np.array(page.evaluate("Array.from(mask)")).reshape(8, 8)
    assert 8 <= mask.sum() < 64 and mask[3:5].sum() == mask.sum()
    page.fill("#inpaint-n", "1")
    with page.expect_request(lambda r: r.url.endswith("/v1/images/edits")) as sent:
        with page.expect_response(lambda r: r.url.endswith("/v1/images/edits")) as answered:
            page.click("#inpaint")
    wait_for_images(page, "#inpaint-results", 1)
    fields = _multipart(sent.value)
    assert fields["model"] == b"digits-diffusion" and fields["n"] == b"1"
    original, sent_mask = png_pixels(fields["image"]), png_pixels(fields["mask"])
    assert sent_mask.shape == original.shape == (8, 8)
    assert ((sent_mask == 255) == (mask == 1)).all() and set(np.unique(sent_mask)) <= {0, 255}
    answer = answered.value.json()["data"]
    for item in answer:
        result = png_pixels(base64.b64decode(item["b64_json"]))
        # known pixels kept (apart from the watermark every image carries), the stroke repainted
        assert np.abs(result - original)[mask == 0].max() <= 10
    captions = page.locator("#inpaint-results figcaption").all_inner_texts()  # random seeds, shown exactly
    assert captions == [f"seed {item['aigckit']['seed']}" for item in answer]
    assert page.is_visible("#source") and page.is_visible("#inpaint-results")
    tab.shot("page-inpaint")
    page.click("#clear-mask")
    assert page.evaluate("mask.every(v => v === 0)")
    # an uploaded image replaces the source, at its own size
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).save(tmp_path / "upload.png")
    page.set_input_files("#upload", str(tmp_path / "upload.png"))
    page.wait_for_function("!document.querySelector('#inpaint').disabled")
    assert page.evaluate("[source.width, source.height, mask.length]") == [8, 8, 64]
    assert tab.errors == []


def test_a_stylizer_takes_the_uploads_and_shows_the_result(server, tab, tmp_path):
    from aigckit.data.photos import bundled_photo

    bundled_photo("chelsea").resize((60, 40)).save(tmp_path / "content.png")
    bundled_photo("coffee").resize((32, 32)).save(tmp_path / "style.png")
    page = tab.open(server.url, "photos-adain")
    assert page.is_visible("#stylize-form") and page.is_hidden("#image-form") and page.is_hidden("#inpaint-form")
    assert page.is_visible("#style-file") and page.is_disabled("#stylize")
    page.set_input_files("#content-file", str(tmp_path / "content.png"))
    page.wait_for_function("!document.querySelector('#content-preview').hidden")
    assert page.is_disabled("#stylize")  # AdaIN needs a style image too
    page.set_input_files("#style-file", str(tmp_path / "style.png"))
    page.wait_for_function("!document.querySelector('#stylize').disabled")
    page.fill("#stylize-size", "48")
    page.fill("#alpha", "0.5")
    page.check("#preserve-color")
    with page.expect_request(lambda r: r.url.endswith("/v1/images/stylize")) as sent:
        page.click("#stylize")
    wait_for_images(page, "#stylize-results", 1)
    fields = _multipart(sent.value)
    assert fields["model"] == b"photos-adain" and fields["alpha"] == b"0.5" and fields["size"] == b"48"
    assert fields["preserve_color"] == b"true"
    # both files went as parts (Chromium does not show a file's bytes to Playwright): the server refuses AdaIN
    # without a style, and the result has the content's 3:2 shape
    assert {"image", "style"} <= fields.keys()
    shown = page.get_attribute("#stylize-results img", "src").removeprefix("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(shown))).size == (48, 32)
    assert "adain" in page.inner_text("#stylize-results figcaption")
    tab.shot("page-stylize")
    # a fast-style network has its one style: no style upload, no strength, the content kept
    page.select_option("#model", "photos-fast-style")
    assert page.is_hidden("#style-file") and page.is_hidden("#alpha") and page.is_enabled("#stylize")
    with page.expect_request(lambda r: r.url.endswith("/v1/images/stylize")) as sent:
        page.click("#stylize")
    wait_for_images(page, "#stylize-results", 1)
    fields = _multipart(sent.value)
    assert fields["model"] == b"photos-fast-style" and "style" not in fields and "alpha" not in fields
    assert tab.errors == []


@needs_fsdd
def test_a_spoken_digit_model_says_the_number_typed(server, tab, vocoder_cache, monkeypatch):
    monkeypatch.setenv("AIGCKIT_CACHE", str(vocoder_cache))  # where the trained vocoders are
    page = tab.open(server.url, "digits-diffusion")
    assert page.is_hidden("#speak-form")  # a model of images cannot speak
    page.select_option("#model", "fsdd-diffusion")
    assert page.is_visible("#speak-form") and page.is_visible("#image-form")  # its spectrograms can be seen too
    page.fill("#speak-input", "3 1 4")
    page.fill("#speak-seed", "7")
    page.select_option("#speak-vocoder", "vocos")
    with page.expect_request(lambda r: r.url.endswith("/v1/audio/speech")) as sent:
        page.click("#speak")
    page.wait_for_function("document.querySelector('#speech').readyState >= 1", timeout=60_000)
    assert sent.value.post_data_json == {"model": "fsdd-diffusion", "input": "3 1 4", "response_format": "wav",
                                         "vocoder": "vocos", "seed": 7}
    duration = page.evaluate("document.querySelector('#speech').duration")  # the browser decoded the WAV
    status = page.inner_text("#speak-status")
    assert '"3 1 4"' in status and "seed 7" in status and "vocos (sha256 " in status
    assert abs(duration - float(status.split(" s of audio")[0].split("· ")[-1])) < 0.01
    assert page.is_visible("#speech-download") and tab.errors == []
    tab.shot("page-speak")


def test_text_streams_into_the_output_and_stop_cancels(server, tab):
    page = tab.open(server.url, "pydoc-gpt")
    page.fill("#prompt", "The ")
    page.fill("#max-tokens", "60")
    page.fill("#text-seed", "3")
    record_values(page, "#output", "e => e.textContent.length")
    page.click("#complete")
    page.wait_for_function("document.querySelector('#text-status').textContent.includes('tokens in')")
    lengths = page.evaluate("window.seen")
    assert len(set(lengths)) >= 5 and lengths == sorted(lengths), f"the text did not stream: {lengths}"
    assert len(page.inner_text("#output")) > len("The ") and "60 tokens" in page.inner_text("#text-status")
    tab.shot("page-text")
    # Stop aborts the fetch; the server cancels the work and records it so
    page.fill("#max-tokens", "1000")
    page.click("#complete")
    page.wait_for_function("document.querySelector('#output').textContent.length > 20")
    page.click("#stop")
    page.wait_for_function("document.querySelector('#text-status').textContent.startsWith('stopped after')")
    assert page.is_enabled("#complete") and page.is_disabled("#stop")
    deadline = time.monotonic() + 30
    while True:
        latest = httpx.get(f"{server.url}/v1/history?limit=1&model=pydoc-gpt").json()["data"]
        if latest and latest[0]["params"]["max_tokens"] == 1000 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert latest[0]["status"] == "cancelled"
    assert tab.errors == []


def test_history_lists_what_was_made_page_by_page(server, tab):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for seed in range(1000, 1021):  # one page of 20 and more
            client.post("/v1/images/generations", json={"model": "digits-diffusion", "n": 1, "steps": 1,
                                                        "seed": seed}).raise_for_status()
        client.post("/v1/images/generations", json={"model": "digits-diffusion", "n": 3, "seed": 424242,
                                                    "labels": [5]}).raise_for_status()
        client.post("/v1/completions", json={"model": "pydoc-gpt", "prompt": "Hello", "max_tokens": 5,
                                             "seed": 99}).raise_for_status()
        deadline = time.monotonic() + 30  # the history is written just after the answer
        while len(client.get("/v1/history?limit=200").json()["data"]) < 23 and time.monotonic() < deadline:
            time.sleep(0.2)
    page = tab.open(server.url)
    page.click("#tab-history")
    page.wait_for_function("document.querySelectorAll('#history .record').length === 20")
    first, second = page.locator("#history .record").nth(0), page.locator("#history .record").nth(1)
    assert "pydoc-gpt" in first.inner_text() and "seed 99" in first.inner_text()
    assert first.locator("pre").count() == 1 and first.locator("pre").inner_text().strip()
    assert "digits-diffusion" in second.inner_text() and "seed 424242" in second.inner_text()
    second.locator("img >> nth=2").wait_for()
    page.wait_for_function("[...document.querySelectorAll('#history .record')[1].querySelectorAll('img')]"
                           ".every(i => i.complete && i.naturalWidth === 8)")
    assert page.is_visible("#more")
    tab.shot("page-history")
    page.click("#more")
    page.wait_for_function("document.querySelectorAll('#history .record').length > 20")
    texts = page.locator("#history .record").all_inner_texts()
    assert len(texts) == len(set(texts)) and any("seed 1000 " in t + " " for t in texts)
    assert tab.errors == []


def test_a_missing_or_wrong_api_key_asks_for_the_key(runs, browser, shots, tmp_path):
    from aigckit.serving import create_app

    app = create_app(runs=[runs["digits-diffusion"]], data_dir=tmp_path, api_keys={KEY: "tester"})
    with LiveServer(app) as server:
        tab = Tab(browser, shots)
        page = tab.page
        page.goto(server.url)  # the page itself needs no key
        page.wait_for_selector("#error:not([hidden])")
        assert "needs an API key" in page.inner_text("#error")
        page.fill("#api-key", "not-the-key")
        page.press("#api-key", "Enter")
        page.wait_for_function("document.querySelector('#error').textContent.includes('refused this API key')")
        assert page.locator("#model option").count() == 0
        tab.shot("page-401")
        with page.expect_request(lambda r: r.url.endswith("/v1/models")) as asked:
            page.fill("#api-key", KEY)
            page.press("#api-key", "Enter")
        assert asked.value.headers["authorization"] == f"Bearer {KEY}"
        page.wait_for_function("document.querySelectorAll('#model option').length === 1")
        assert page.is_hidden("#error")
        page.reload()  # the key is kept in localStorage
        page.wait_for_function("document.querySelectorAll('#model option').length === 1")
        assert page.input_value("#api-key") == KEY
        tab.context.close()
        assert tab.outside == []


def readme_screenshot(run_dir: Path, browser, shots: Path, workdir: Path) -> Path:
    """Serve `run_dir` as digits-diffusion, generate a gallery of 14 digits and write docs/serve-page.png."""
    from aigckit.atomic import atomic_write_bytes
    from aigckit.serving import create_app

    served = workdir / "digits-diffusion"
    shutil.copytree(run_dir, served)
    with LiveServer(create_app(runs=[served], data_dir=workdir / "data")) as server:
        tab = Tab(browser, shots)
        page = tab.open(server.url, "digits-diffusion")
        page.set_viewport_size({"width": 1100, "height": 900})
        for n in (1, 14):  # the first request warms the model up; the second one is shown
            page.fill("#n", str(n))
            page.fill("#seed", "2024")
            page.click("#generate")
            wait_for_images(page, "#gallery", n)
        page.click("#gallery .thumb >> nth=5")
        target = ROOT / "docs" / "serve-page.png"
        atomic_write_bytes(target, page.screenshot(full_page=False))
        tab.context.close()
        assert tab.outside == [] and tab.errors == []
    return target


@pytest.mark.skipif(not os.environ.get("AIGCKIT_PAGE_SCREENSHOT"),
                    reason="set AIGCKIT_PAGE_SCREENSHOT=1 to rewrite docs/serve-page.png (trains a better model)")
def test_readme_screenshot(trained_diffusion, browser, shots, tmp_path):
    print(f"screenshot: {readme_screenshot(trained_diffusion, browser, shots, tmp_path)}")


@needs_mnist
def test_a_text_to_image_model_takes_its_prompt_from_the_form(text_to_image_run, browser, shots, tmp_path):
    from aigckit.serving import create_app

    app = create_app(runs=[text_to_image_run], data_dir=tmp_path / "data")
    with LiveServer(app) as live:
        tab = Tab(browser, shots)
        try:
            page = tab.open(live.url, "canvas-t2i")
            assert page.is_visible("#image-form") and page.is_visible("#option-prompt")
            assert page.get_attribute("#option-prompt", "type") == "text"
            assert page.locator("label[for='option-prompt']").inner_text() == "Prompt"
            assert page.input_value("#option-prompt")  # the model's first training caption as the default
            page.fill("#option-prompt", "a large 0 on the left")
            page.fill("#option-steps", "3")
            page.fill("#n", "2")
            with page.expect_request(lambda r: r.method == "POST" and "/v1/" in r.url) as sent:
                page.click("#generate")
            assert sent.value.post_data_json["request"]["prompt"] == "a large 0 on the left"
            wait_for_images(page, "#gallery", 2)
            page.click("#gallery .thumb >> nth=0")
            meta = dict(zip(page.locator("#meta dt").all_inner_texts(), page.locator("#meta dd").all_inner_texts()))
            assert meta["prompt"] == "a large 0 on the left"
            assert tab.errors == [] and tab.outside == []
        finally:
            tab.context.close()


def test_a_video_model_shows_a_clip_of_the_digits_typed(served_video_run, browser, shots, tmp_path):
    from aigckit.serving import create_app

    app = create_app(runs=[served_video_run], data_dir=tmp_path / "data")
    with LiveServer(app) as live:
        tab = Tab(browser, shots)
        try:
            page = tab.open(live.url, "moving-digits")
            assert page.is_visible("#video-form")
            assert page.is_hidden("#image-form") and page.is_hidden("#inpaint-form") and page.is_hidden("#text-form")
            info = page.inner_text("#model-info")
            assert "8 frames of 8×8 at 10 fps" in info and "1 digit per clip" in info
            assert page.input_value("#video-digits") == "3"  # a default with as many digits as a clip shows
            page.fill("#video-digits", "7")
            page.fill("#video-seed", "4")
            with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/v1/videos")) as sent:
                page.click("#make-video")
            page.wait_for_function("document.querySelector('#video').src.startsWith('blob:') || "
                                   "!document.querySelector('#error').hidden")
            assert page.is_hidden("#error"), page.inner_text("#error")
            fields = _multipart(sent.value)
            assert fields == {"model": b"moving-digits", "prompt": b"7", "seed": b"4"}
            assert page.is_visible("#video") and page.is_visible("#video-download")
            status = page.inner_text("#video-status")
            assert '"7"' in status and "seed 4" in status and "0.8 s, 8x8" in status
            # the browser decodes the MP4 where it plays H.264 (Debian's Chromium does; a build without it may not)
            if page.evaluate("document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.64000a\"')"):
                page.wait_for_function("document.querySelector('#video').readyState >= 1")
                width, duration = page.evaluate("[document.querySelector('#video').videoWidth, "
                                                "document.querySelector('#video').duration]")
                assert width == 8 and abs(duration - 0.8) < 0.05
            tab.shot("page-video")
            page.click("#tab-history")  # the clip is in the history, playable there too
            page.wait_for_function("document.querySelector('#history .record video')?.src.startsWith('blob:')")
            assert "moving-digits · videos · done · seed 4" in page.inner_text("#history .record")
            assert tab.errors == [] and tab.outside == []
        finally:
            tab.context.close()


def test_a_prediction_model_continues_a_first_frame_chosen_on_the_page(served_video_run, served_prediction_run,
                                                                       browser, shots, tmp_path):
    from aigckit.serving import create_app

    frame = np.full((8, 8), 30, dtype=np.uint8)
    frame[1:7, 4] = 220
    Image.fromarray(frame).save(tmp_path / "frame.png")
    app = create_app(runs=[served_video_run, served_prediction_run], data_dir=tmp_path / "data")
    with LiveServer(app) as live:
        tab = Tab(browser, shots)
        try:
            page = tab.open(live.url, "moving-digits")
            assert page.is_hidden("#video-first-frame")  # a model trained to generate only takes no first frame
            page = tab.open(live.url, "continues")
            assert page.is_visible("#video-first-frame") and "give a first frame" in page.inner_text("#video-help")
            page.fill("#video-digits", "")
            page.set_input_files("#video-first-frame", str(tmp_path / "frame.png"))
            with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/v1/videos")) as sent:
                page.click("#make-video")
            page.wait_for_function("document.querySelector('#video').src.startsWith('blob:') || "
                                   "!document.querySelector('#error').hidden")
            assert page.is_hidden("#error"), page.inner_text("#error")
            fields = _multipart(sent.value)  # (Chromium leaves a file's bytes out of the request it reports)
            assert fields["prompt"] == b"" and "input_reference" in fields
            assert "from the first frame given" in page.inner_text("#video-status")
            [video] = httpx.get(f"{live.url}/v1/videos").json()["data"]  # the server got the file itself
            png = (tmp_path / "frame.png").read_bytes()
            assert video["aigckit"]["input_reference_sha256"] == hashlib.sha256(png).hexdigest()
            assert tab.errors == [] and tab.outside == []
        finally:
            tab.context.close()
