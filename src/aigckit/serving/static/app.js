"use strict";
// aigckit's web page: plain JavaScript, no framework; every call goes to the server that served this page.

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "aigckit.apiKey";
const META_FIELDS = ["model", "seed", "label", "prompt", "sampler", "steps", "guidance", "eta", "method", "checkpoint_sha256",
                     "sha256", "seconds", "time", "aigckit_version"];

let models = [];          // GET /v1/models -> data
let jobId = null;         // the image job now running
let videoId = null;       // the video (a job) now being made
let textAbort = null;     // aborts the streaming completion
let historyNext = null;   // the `before` cursor of the next history page
let historyUrls = [];     // object URLs of history images, freed on reload
let source = null;        // the image to inpaint: {blob, width, height}
let mask = null;          // Uint8Array(width * height): 1 = repaint
let stylizeFiles = { content: null, style: null };  // the stylize panel's chosen files

// ------------------------------------------------------------------ talking to the server

class ApiError extends Error {}

function authHeaders(extra = {}) {
  const key = $("api-key").value.trim();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

/** fetch() with the API key; a non-2xx answer throws an ApiError with the server's one-line message. */
async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: authHeaders(options.headers) });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("the server cannot be reached; is it still running?");
  }
  if (!response.ok) throw new ApiError(await errorMessage(response));
  return response;
}

async function errorMessage(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch { /* not JSON: keep the status line */ }
  if (response.status === 401) {
    return $("api-key").value.trim()
      ? `The server refused this API key: check the "API key" field at the top (server: ${message}).`
      : `This server needs an API key: type yours in the "API key" field at the top (server: ${message}).`;
  }
  return message;
}

const postJson = (path, body, signal) =>
  api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal });

/** Server-sent events of a streaming response, read with fetch (EventSource cannot send the key). */
async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = /\r?\n\r?\n/.exec(buffer))) {
      const block = buffer.slice(0, end.index);
      buffer = buffer.slice(end.index + end[0].length);
      let event = "message";
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
  }
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

const optionalNumber = (input) => (input.value === "" ? undefined : Number(input.value));

const seconds = (from, to) => `${(to - from).toFixed(1)} s`;

// ------------------------------------------------------------------ models

async function loadModels() {
  clearError();
  try {
    models = (await (await api("/v1/models")).json()).data;
  } catch (error) {
    models = [];
    showError(error.message);
  }
  const select = $("model");
  const previous = select.value;
  select.replaceChildren(...models.map((m) => new Option(`${m.id} — ${m.aigckit.family}, ${m.aigckit.kind}`, m.id)));
  if (models.some((m) => m.id === previous)) select.value = previous;
  showModel();
}

const currentModel = () => models.find((m) => m.id === $("model").value);

function showModel() {
  const info = currentModel() && currentModel().aigckit;
  const stylizer = Boolean(info) && info.family === "style";
  $("image-form").hidden = !info || info.kind !== "image" || stylizer;
  $("inpaint-form").hidden = !info || info.kind !== "image" || stylizer || !info.inpaint_method;
  $("stylize-form").hidden = !stylizer;
  $("speak-form").hidden = !info || !info.speech;
  $("video-form").hidden = !info || info.kind !== "video";
  $("text-form").hidden = !info || info.kind !== "text";
  if (!info) {
    $("model-info").textContent = "no model to show";
    return;
  }
  const parts = [info.family, info.model];
  if (stylizer) {
    parts.push(`trained on ${info.image_size}×${info.image_size} crops`);
  } else if (info.kind === "image") {
    parts.push(`${info.image_size}×${info.image_size}`, info.num_classes ? `${info.num_classes} classes` : "unconditional");
  } else if (info.kind === "video") {
    parts.push(`${info.frames} frames of ${info.size.replace("x", "×")} at ${info.fps} fps`,
      info.digits_per_clip ? `${info.digits_per_clip} digit${info.digits_per_clip > 1 ? "s" : ""} per clip` : "unconditional");
  } else {
    parts.push(`context ${info.context_size} tokens`);
  }
  parts.push(`checkpoint ${info.checkpoint_sha256.slice(0, 12)}…`);
  $("model-info").textContent = parts.join(" · ");
  $("model-info").title = `checkpoint sha256 ${info.checkpoint_sha256}`;
  if (stylizer) buildStylizeForm(info);
  else if (info.kind === "image") buildImageForm(info);
  else if (info.kind === "video") buildVideoForm(info);
}

/** One input per sampling option of the model's family, from its type, choices, range and default. */
function buildImageForm(info) {
  const box = $("options");
  box.replaceChildren();
  for (const [name, spec] of Object.entries(info.options || {})) {
    const label = document.createElement("label");
    label.htmlFor = `option-${name}`;
    label.textContent = name[0].toUpperCase() + name.slice(1);
    let input;
    if (spec.type === "choice") {
      input = document.createElement("select");
      for (const choice of spec.choices) input.add(new Option(choice, choice));
    } else {
      input = document.createElement("input");
      input.type = spec.type === "bool" ? "checkbox" : spec.type === "text" ? "text" : "number";
      if (input.type === "number") input.step = spec.type === "int" ? "1" : "any";
      if (spec.min != null) input.min = spec.min;
      if (spec.max != null) input.max = spec.max;
    }
    if (spec.type === "bool") input.checked = Boolean(spec.default);
    else if (spec.default != null) input.value = spec.default;
    input.id = `option-${name}`;
    input.dataset.option = name;
    input.dataset.type = spec.type;
    if (spec.only_for) label.dataset.onlyFor = input.dataset.onlyFor = spec.only_for;
    box.append(label, input);
  }
  showOnlyFor();
  const conditional = info.num_classes > 0;
  for (const element of document.querySelectorAll(".conditional")) element.hidden = !conditional;
  const classes = Array.from({ length: info.num_classes || 0 }, (_, k) => new Option(`${k}`, `${k}`));
  $("label").replaceChildren(new Option("mixed (0, 1, 2, …)", ""), ...classes);
  $("inpaint-label").replaceChildren(new Option("any", ""), ...classes.map((o) => new Option(o.text, o.value)));
  $("inpaint-method").textContent = info.inpaint_method ? `(${info.inpaint_method})` : "";
  $("brush").max = Math.max(1, Math.floor(info.image_size / 4));
  $("brush").value = Math.max(1, Math.round(info.image_size / 8));
  setSource(null);
}

/** Options that apply to one sampler only (eta: ddim) show when that sampler is chosen. */
function showOnlyFor() {
  const sampler = $("option-sampler");
  for (const element of $("options").querySelectorAll("[data-only-for]")) {
    const applies = !sampler || sampler.value === element.dataset.onlyFor;
    element.hidden = !applies;
    if (element.tagName !== "LABEL") element.disabled = !applies;
  }
}

// ------------------------------------------------------------------ image generation: a job, its events, a gallery

function imageRequest() {
  const request = { model: $("model").value, n: Number($("n").value), response_format: "b64_json" };
  for (const input of $("options").querySelectorAll("[data-option]")) {
    if (input.disabled || (input.type === "number" && input.value === "")) continue;
    const type = input.dataset.type;
    request[input.dataset.option] =
      type === "choice" || type === "text" ? input.value : type === "bool" ? input.checked : Number(input.value);
  }
  if (!$("label").hidden && $("label").value !== "") request.labels = [Number($("label").value)];
  const seed = optionalNumber($("seed"));
  if (seed !== undefined) request.seed = seed;
  return request;
}

function showProgress(step, total) {
  $("progress").max = Math.max(total, 1);
  $("progress").value = step;
}

function showJob(job) {
  const text = {
    queued: job.queue_position != null ? `queued, ${job.queue_position} ahead` : "queued",
    running: job.progress.total ? `running: step ${job.progress.step} of ${job.progress.total}` : "running",
    done: `done in ${seconds(job.created, job.finished)}`,
    failed: "failed",
    cancelled: "cancelled",
  }[job.status];
  $("job-status").textContent = text || job.status;
}

async function generate(event) {
  event.preventDefault();
  clearError();
  $("generate").disabled = true;
  $("gallery").replaceChildren();
  $("meta").hidden = true;
  showProgress(0, 1);
  $("job-status").textContent = "submitting…";
  try {
    const job = await (await postJson("/v1/jobs", { type: "images.generations", request: imageRequest() })).json();
    jobId = job.id;
    $("cancel").disabled = false;
    let last = job;
    const stream = await api(`/v1/jobs/${job.id}/events`);
    for await (const { event: kind, data } of readEvents(stream)) {
      const payload = JSON.parse(data);
      if (kind === "progress") {
        showProgress(payload.step, payload.total);
        $("job-status").textContent = `running: step ${payload.step} of ${payload.total}`;
      } else if (kind === "status") {
        last = payload;
        showJob(payload);
      }
    }
    if (last.status === "done") {
      showProgress(1, 1);
      for (const item of last.result.data) addImage($("gallery"), item);
    } else if (last.status === "failed") {
      showError(last.error.message);
    }
  } catch (error) {
    showError(error.message);
    $("job-status").textContent = "";
  } finally {
    jobId = null;
    $("generate").disabled = false;
    $("cancel").disabled = true;
  }
}

async function cancel() {
  if (!jobId) return;
  $("cancel").disabled = true;
  try {
    await api(`/v1/jobs/${jobId}`, { method: "DELETE" });
  } catch (error) {
    showError(error.message);
  }
}

function pngBlob(base64) {
  return new Blob([Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))], { type: "image/png" });
}

function describe(meta) {
  return META_FIELDS.filter((k) => meta[k] != null).map((k) => `${k}: ${meta[k]}`).join("\n");
}

/** A thumbnail (drawn enlarged, pixels kept sharp) whose metadata shows on hover and, in full, on click; captioned
 * by its seed unless `captionText` is given. */
function addImage(container, item, captionText = null) {
  const meta = item.aigckit;
  const figure = document.createElement("figure");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "thumb";
  button.title = describe(meta);
  const image = new Image();
  image.src = `data:image/png;base64,${item.b64_json}`;
  image.alt = captionText ? `image, ${captionText}`
    : `generated image, seed ${meta.seed}` + (meta.label != null ? `, class ${meta.label}` : "");
  button.append(image);
  button.addEventListener("click", () => showMeta(item, button));
  const caption = document.createElement("figcaption");
  caption.textContent = captionText || `seed ${meta.seed}` + (meta.label != null ? ` · class ${meta.label}` : "");
  figure.append(button, caption);
  container.append(figure);
}

function showMeta(item, button) {
  for (const other of document.querySelectorAll(".thumb[aria-pressed]")) other.removeAttribute("aria-pressed");
  button.setAttribute("aria-pressed", "true");
  const list = $("meta");
  list.replaceChildren();
  for (const key of META_FIELDS) {
    if (item.aigckit[key] == null) continue;
    const term = document.createElement("dt");
    term.textContent = key;
    const value = document.createElement("dd");
    value.textContent = item.aigckit[key];
    list.append(term, value);
  }
  const actions = document.createElement("dd");
  actions.className = "actions";
  const download = document.createElement("a");
  download.href = `data:image/png;base64,${item.b64_json}`;
  download.download = `${item.aigckit.sha256}.png`;
  download.textContent = "Download PNG";
  actions.append(download);
  if (!$("inpaint-form").hidden) {
    const use = document.createElement("button");
    use.type = "button";
    use.id = "use-for-inpaint";
    use.textContent = "Inpaint this image";
    use.addEventListener("click", () => {
      setSource(pngBlob(item.b64_json));
      $("inpaint-form").scrollIntoView();
    });
    actions.append(" ", use);
  }
  list.append(actions);
  list.hidden = false;
}

// ------------------------------------------------------------------ inpainting: paint a mask over an image

async function setSource(blob) {
  source = mask = null;
  $("inpaint").disabled = true;
  $("inpaint-results").replaceChildren();
  for (const canvas of [$("source"), $("mask")]) canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  if (!blob) return;
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);
  } catch {
    showError("the chosen file is not an image this browser can read; use a PNG, JPEG or WebP");
    return;
  }
  const { width, height } = bitmap;
  for (const canvas of [$("source"), $("mask")]) Object.assign(canvas, { width, height });
  $("source").parentElement.style.aspectRatio = `${width} / ${height}`;
  $("source").getContext("2d").drawImage(bitmap, 0, 0);
  source = { blob, width, height };
  mask = new Uint8Array(width * height);
  $("inpaint").disabled = false;
  drawMask();
}

function drawMask() {
  const { width, height } = source;
  const overlay = new ImageData(width, height);
  mask.forEach((on, i) => { if (on) overlay.data.set([255, 60, 60, 170], 4 * i); });
  $("mask").getContext("2d").putImageData(overlay, 0, 0);
}

/** Paint a square brush of `size` pixels centred on the image pixel under (x, y). */
function paintAt(x, y) {
  const size = Number($("brush").value);
  const left = Math.floor(x) - Math.floor((size - 1) / 2);
  const top = Math.floor(y) - Math.floor((size - 1) / 2);
  for (let py = Math.max(top, 0); py < Math.min(top + size, source.height); py++) {
    for (let px = Math.max(left, 0); px < Math.min(left + size, source.width); px++) mask[py * source.width + px] = 1;
  }
}

let lastPoint = null;

function imagePoint(event) {
  const box = $("mask").getBoundingClientRect();
  return [(event.clientX - box.left) * source.width / box.width, (event.clientY - box.top) * source.height / box.height];
}

function paintStroke(event) {
  if (!source || !lastPoint) return;
  const [x, y] = imagePoint(event);
  const [x0, y0] = lastPoint;
  const steps = Math.max(1, Math.ceil(2 * Math.hypot(x - x0, y - y0)));  // half a pixel apart: no gaps
  for (let i = 1; i <= steps; i++) paintAt(x0 + (x - x0) * i / steps, y0 + (y - y0) * i / steps);
  lastPoint = [x, y];
  drawMask();
}

function startStroke(event) {
  if (!source) return;
  $("mask").setPointerCapture(event.pointerId);
  lastPoint = imagePoint(event);
  paintAt(...lastPoint);
  drawMask();
}

/** The mask as the server takes it: a PNG of the image's size, white where to repaint, black elsewhere. */
function maskBlob() {
  const canvas = Object.assign(document.createElement("canvas"), { width: source.width, height: source.height });
  const pixels = new ImageData(source.width, source.height);
  mask.forEach((on, i) => pixels.data.set(on ? [255, 255, 255, 255] : [0, 0, 0, 255], 4 * i));
  canvas.getContext("2d").putImageData(pixels, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

async function inpaint(event) {
  event.preventDefault();
  clearError();
  if (!mask.includes(1)) {
    showError("paint over the part of the image to repaint first (the mask is empty)");
    return;
  }
  $("inpaint").disabled = true;
  $("inpaint-results").replaceChildren();
  $("inpaint-status").textContent = "inpainting…";
  const started = performance.now() / 1000;
  try {
    const form = new FormData();
    form.append("image", source.blob, "image.png");
    form.append("mask", await maskBlob(), "mask.png");
    form.append("model", $("model").value);
    form.append("n", $("inpaint-n").value);
    form.append("response_format", "b64_json");
    if ($("inpaint-seed").value !== "") form.append("seed", $("inpaint-seed").value);
    if (!$("inpaint-label").hidden && $("inpaint-label").value !== "") form.append("label", $("inpaint-label").value);
    const result = await (await api("/v1/images/edits", { method: "POST", body: form })).json();
    for (const item of result.data) addImage($("inpaint-results"), item);
    $("inpaint-status").textContent = `done in ${seconds(started, performance.now() / 1000)}`;
  } catch (error) {
    showError(error.message);
    $("inpaint-status").textContent = "";
  } finally {
    $("inpaint").disabled = false;
  }
}

// ------------------------------------------------------------------ style transfer: one pass of a trained stylizer

function buildStylizeForm(info) {
  const adain = info.model === "adain";
  for (const element of document.querySelectorAll(".adain-only")) element.hidden = !adain;
  $("stylize-method").textContent = `(${info.model})`;
  $("stylize-help").textContent = adain
    ? "Any content image in the style of any style image; the strength mixes the content's feature statistics with the style's."
    : "Any content image in the one style this network learned.";
  $("stylize-results").replaceChildren();
  updateStylizeButton();
}

function updateStylizeButton() {
  const adain = !$("style-file").hidden;
  $("stylize").disabled = !stylizeFiles.content || (adain && !stylizeFiles.style);
}

/** Keep the chosen file and show it, or say in one line that it is not an image. */
async function chooseStylizeFile(which, input, preview) {
  const file = input.files[0] || null;
  stylizeFiles[which] = null;
  preview.hidden = true;
  if (file) {
    try {
      (await createImageBitmap(file)).close();
    } catch {
      showError(`the ${which} file is not an image this browser can read; use a PNG, JPEG or WebP`);
      updateStylizeButton();
      return;
    }
    clearError();
    stylizeFiles[which] = file;
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
  }
  updateStylizeButton();
}

async function stylize(event) {
  event.preventDefault();
  clearError();
  const adain = !$("style-file").hidden;
  $("stylize").disabled = true;
  $("stylize-results").replaceChildren();
  $("stylize-status").textContent = "stylizing…";
  const started = performance.now() / 1000;
  try {
    const form = new FormData();
    form.append("image", stylizeFiles.content, stylizeFiles.content.name || "content.png");
    if (adain) {
      form.append("style", stylizeFiles.style, stylizeFiles.style.name || "style.png");
      form.append("alpha", $("alpha").value);
    }
    form.append("model", $("model").value);
    form.append("size", $("stylize-size").value);
    form.append("preserve_color", $("preserve-color").checked ? "true" : "false");
    form.append("response_format", "b64_json");
    const result = await (await api("/v1/images/stylize", { method: "POST", body: form })).json();
    for (const item of result.data) addImage($("stylize-results"), item, `${item.aigckit.method} · ${Number(item.aigckit.seconds).toFixed(2)} s`);
    $("stylize-status").textContent = `done in ${seconds(started, performance.now() / 1000)}`;
  } catch (error) {
    showError(error.message);
    $("stylize-status").textContent = "";
  } finally {
    updateStylizeButton();
  }
}

// ------------------------------------------------------------------ speech: a number said by a spoken-digit model

async function speakDigits(event) {
  event.preventDefault();
  clearError();
  $("speak").disabled = true;
  $("speak-status").textContent = "speaking…";
  const started = performance.now() / 1000;
  try {
    const body = { model: $("model").value, input: $("speak-input").value, response_format: "wav",
                   vocoder: $("speak-vocoder").value };
    const seed = optionalNumber($("speak-seed"));
    if (seed !== undefined) body.seed = seed;
    const response = await postJson("/v1/audio/speech", body);
    const made = JSON.parse(response.headers.get("X-Aigckit"));
    const url = URL.createObjectURL(await response.blob());
    if ($("speech").src) URL.revokeObjectURL($("speech").src);
    $("speech").src = url;
    $("speech-download").href = url;
    $("speech").hidden = $("speech-download").hidden = false;
    $("speak-status").textContent = `"${made.digits.join(" ")}" · seed ${made.seed} · ${made.vocoder} · ` +
      `${made.seconds} s of audio, made in ${seconds(started, performance.now() / 1000)}`;
  } catch (error) {
    showError(error.message);
    $("speak-status").textContent = "";
  } finally {
    $("speak").disabled = false;
  }
}

// ------------------------------------------------------------------ video: a clip of the digits typed

function buildVideoForm(info) {
  const k = info.digits_per_clip;
  const digits = $("video-digits");
  digits.disabled = !k;
  $("video-help").textContent = k
    ? `One ${info.seconds} s clip (${info.frames} frames, ${info.size}) showing the ${k} digit${k > 1 ? "s" : ""} typed.`
    : `One ${info.seconds} s clip (${info.frames} frames, ${info.size}); this model is not conditioned on digits.`;
  const typed = digits.value.replace(/[^0-9]/g, "");
  if (k && typed.length !== k) digits.value = Array.from({ length: k }, (_, i) => "3714"[i % 4]).join(" ");
  if (!k) digits.value = "";
  // a prediction model continues an image as its first frame (OpenAI's input_reference); digits may then be empty
  for (const element of document.querySelectorAll("#video-form .first-frame")) {
    element.hidden = !info.continues_first_frame;
  }
  if (!info.continues_first_frame) $("video-first-frame").value = "";
  if (info.continues_first_frame) $("video-help").textContent += " Or give a first frame for the clip to continue.";
}

async function makeVideo(event) {
  event.preventDefault();
  clearError();
  $("make-video").disabled = true;
  $("video-progress").max = 1;
  $("video-progress").value = 0;
  $("video-status").textContent = "submitting…";
  const started = performance.now() / 1000;
  try {
    const form = new FormData();  // OpenAI's Videos API takes form fields
    form.append("model", $("model").value);
    form.append("prompt", $("video-digits").value);
    if ($("video-seed").value !== "") form.append("seed", $("video-seed").value);
    const firstFrame = $("video-first-frame").files[0];
    if (firstFrame) form.append("input_reference", firstFrame);
    let video = await (await api("/v1/videos", { method: "POST", body: form })).json();
    videoId = video.id;
    $("cancel-video").disabled = false;
    const stream = await api(`/v1/jobs/${video.id}/events`);  // a video is a job: its events carry the progress
    for await (const { event: kind, data } of readEvents(stream)) {
      const payload = JSON.parse(data);
      if (kind === "progress") {
        $("video-progress").max = Math.max(payload.total, 1);
        $("video-progress").value = payload.step;
        $("video-status").textContent = `running: step ${payload.step} of ${payload.total}`;
      } else if (kind === "status" && payload.status === "queued") {
        $("video-status").textContent = "queued";
      }
    }
    video = await (await api(`/v1/videos/${video.id}`)).json();
    if (video.status !== "completed") {
      $("video-status").textContent = video.error && video.error.code === "cancelled" ? "cancelled" : "failed";
      if (video.error && video.error.code !== "cancelled") showError(video.error.message);
      return;
    }
    const url = URL.createObjectURL(await (await api(`/v1/videos/${video.id}/content`)).blob());
    if ($("video").src) URL.revokeObjectURL($("video").src);
    $("video").src = $("video-download").href = url;
    $("video").hidden = $("video-download").hidden = false;
    $("video").play().catch(() => { /* the controls still play it */ });
    $("video-progress").value = $("video-progress").max;
    const made = video.aigckit;
    const shown = (made.digits ? `"${made.digits.join(" ")}" · ` : "") +
      (made.input_reference_sha256 ? "from the first frame given · " : "");
    $("video-status").textContent = `${shown}seed ${made.seed} · ${video.seconds} s, ${video.size}, ` +
      `made in ${seconds(started, performance.now() / 1000)}`;
    $("video").title = describe(made);
  } catch (error) {
    showError(error.message);
    $("video-status").textContent = "";
  } finally {
    videoId = null;
    $("make-video").disabled = false;
    $("cancel-video").disabled = true;
  }
}

async function cancelVideo() {
  if (!videoId) return;
  $("cancel-video").disabled = true;
  try {
    await api(`/v1/jobs/${videoId}`, { method: "DELETE" });
  } catch (error) {
    showError(error.message);
  }
}

// ------------------------------------------------------------------ text: streamed completions

async function complete(event) {
  event.preventDefault();
  clearError();
  const prompt = $("prompt").value;
  const output = $("output");
  const shown = document.createElement("span");
  shown.className = "prompt";
  shown.textContent = prompt;
  const generated = document.createTextNode("");
  output.replaceChildren(shown, generated);
  textAbort = new AbortController();
  $("complete").disabled = true;
  $("stop").disabled = false;
  $("text-status").textContent = "waiting for the first token…";
  const started = performance.now() / 1000;
  let pieces = 0;
  let reason = null;
  try {
    const body = {
      model: $("model").value, prompt, stream: true, max_tokens: Number($("max-tokens").value),
      temperature: Number($("temperature").value), top_p: Number($("top-p").value),
      top_k: optionalNumber($("top-k")), seed: optionalNumber($("text-seed")),
    };
    const response = await postJson("/v1/completions", body, textAbort.signal);
    for await (const { data } of readEvents(response)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new ApiError(chunk.error.message);
      for (const choice of chunk.choices) {
        if (choice.text) {
          generated.appendData(choice.text);
          pieces += 1;
          $("text-status").textContent = `${pieces} tokens`;
        }
        if (choice.finish_reason) reason = choice.finish_reason;
      }
    }
    const elapsed = performance.now() / 1000 - started;
    $("text-status").textContent = `${pieces} tokens in ${elapsed.toFixed(1)} s` + (reason ? ` (finish: ${reason})` : "");
  } catch (error) {
    if (error.name === "AbortError") $("text-status").textContent = `stopped after ${pieces} tokens`;
    else {
      showError(error.message);
      $("text-status").textContent = "";
    }
  } finally {
    textAbort = null;
    $("complete").disabled = false;
    $("stop").disabled = true;
  }
}

// ------------------------------------------------------------------ history

async function loadHistory(more) {
  clearError();
  const query = new URLSearchParams({ limit: "20" });
  if (more && historyNext) query.set("before", historyNext);
  let page;
  try {
    page = await (await api(`/v1/history?${query}`)).json();
  } catch (error) {
    showError(error.message);
    return;
  }
  if (!more) {
    historyUrls.forEach(URL.revokeObjectURL);
    historyUrls = [];
    $("history").replaceChildren();
    if (!page.data.length) $("history").append(Object.assign(document.createElement("li"), { textContent: "Nothing made yet." }));
  }
  for (const record of page.data) $("history").append(historyItem(record));
  historyNext = page.next;
  $("more").hidden = !page.next;
}

function historyItem(record) {
  const item = document.createElement("li");
  item.className = `record ${record.status}`;
  const head = document.createElement("div");
  const when = new Date(record.created_at).toLocaleString();
  const run = record.timings.run_ms != null ? ` · ${(record.timings.run_ms / 1000).toFixed(1)} s` : "";
  head.textContent = `${when} · ${record.model_id} · ${record.job_type} · ${record.status}` +
    (record.seed != null ? ` · seed ${record.seed}` : "") + run;
  const params = document.createElement("div");
  params.className = "muted";
  const hidden = ["model", "response_format", "stream", ...(record.kind === "video" ? [] : ["prompt"])];  // a clip's digits show
  const shown = Object.entries(record.params).filter(([k]) => !hidden.includes(k));
  params.textContent = shown.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
  item.append(head, params);
  if (record.error) item.append(Object.assign(document.createElement("div"), { className: "error-text", textContent: record.error }));
  if (record.kind === "image") {
    const strip = document.createElement("div");
    strip.className = "strip";
    for (const sha of record.outputs) {
      const image = new Image();
      image.alt = `image ${sha.slice(0, 12)}`;
      image.title = `${sha}.png`;
      strip.append(image);
      api(`/v1/files/${sha}.png`).then((r) => r.blob()).then((blob) => {
        const url = URL.createObjectURL(blob);
        historyUrls.push(url);
        image.src = url;
      }).catch((error) => { image.alt = error.message; });
    }
    item.append(strip);
  } else if (record.kind === "video") {
    const strip = document.createElement("div");
    strip.className = "strip";
    for (const sha of record.outputs) {
      const video = Object.assign(document.createElement("video"), { muted: true, loop: true, autoplay: true, title: `${sha}.mp4` });
      strip.append(video);
      api(`/v1/files/${sha}.mp4`).then((r) => r.blob()).then((blob) => {
        const url = URL.createObjectURL(blob);
        historyUrls.push(url);
        video.src = url;
      }).catch((error) => { video.title = error.message; });
    }
    item.append(strip);
  } else {
    for (const text of record.outputs) {
      item.append(Object.assign(document.createElement("pre"), { className: "output", textContent: text }));
    }
  }
  return item;
}

// ------------------------------------------------------------------ wiring

function showTab(name) {
  for (const tab of ["make", "history"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`view-${tab}`).hidden = tab !== name;
  }
  if (name === "history") loadHistory(false);
}

$("api-key").value = localStorage.getItem(KEY_STORAGE) || "";
$("api-key").addEventListener("change", () => {
  const key = $("api-key").value.trim();
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
  loadModels();
});
$("tab-make").addEventListener("click", () => showTab("make"));
$("tab-history").addEventListener("click", () => showTab("history"));
$("model").addEventListener("change", showModel);
$("options").addEventListener("change", showOnlyFor);
$("image-form").addEventListener("submit", generate);
$("cancel").addEventListener("click", cancel);
$("upload").addEventListener("change", () => setSource($("upload").files[0] || null));
$("mask").addEventListener("pointerdown", startStroke);
$("mask").addEventListener("pointermove", paintStroke);
for (const end of ["pointerup", "pointercancel"]) $("mask").addEventListener(end, () => { lastPoint = null; });
$("clear-mask").addEventListener("click", () => { if (mask) { mask.fill(0); drawMask(); } });
$("inpaint-form").addEventListener("submit", inpaint);
$("content-file").addEventListener("change", () => chooseStylizeFile("content", $("content-file"), $("content-preview")));
$("style-file").addEventListener("change", () => chooseStylizeFile("style", $("style-file"), $("style-preview")));
$("alpha").addEventListener("input", () => { $("alpha-value").value = $("alpha").value; });
$("stylize-form").addEventListener("submit", stylize);
$("speak-form").addEventListener("submit", speakDigits);
$("video-form").addEventListener("submit", makeVideo);
$("cancel-video").addEventListener("click", cancelVideo);
$("text-form").addEventListener("submit", complete);
$("stop").addEventListener("click", () => textAbort && textAbort.abort());
$("more").addEventListener("click", () => loadHistory(true));
loadModels();
