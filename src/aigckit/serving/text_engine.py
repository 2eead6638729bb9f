"""Continuous batching for text: one worker thread decodes every running request of a language model together.

As vLLM and text-generation-inference do it: the worker keeps a batch of rows, one per running request. Between
two decoding steps it admits waiting requests (each prompt is prefilled alone, then its cache joins the batch)
and drops the rows that finished, met a stop string or whose sink was cancelled, so a slot is free at once and a
cancelled request costs no forward pass after the step in which it was cancelled. Each step is one forward pass
of the whole batch over the KV cache:

- our GPT: a BatchKVCache (gpt.py) holds rows of different lengths; each row's token sits at its own position
  (learned or rotary) and attention masks the keys beyond its length;
- the LSTM: its recurrent state, one column per row;
- any other model (a transformers causal LM): one request at a time, through its own cache.

Every request chooses its tokens as TextPipeline.stream does (choose_tokens of generation.py, its own options and
torch.Generator, seeded from its seed or at random), so its output does not depend on its batch-mates: greedy
text equals TextPipeline.generate of the request alone. Text is emitted as stream emits it: the text that cannot
still become a stop string or complete a multi-byte character.

Past the context (block_size): a GPT row whose sequence outgrows the context slides its window as
generate_tokens does. It leaves the batch cache and, at every further step, recomputes the last block_size
positions in a forward pass of its own (what generate_tokens does every step past the context); the other rows
keep decoding together.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ..data.tokenizers import CharTokenizer
from ..errors import AigcError
from ..models.lm.generation import check_context, check_generation_options, choose_tokens
from ..models.lm.gpt import GPT, BatchKVCache
from ..models.lm.lstm import LSTMLanguageModel
from ..models.lm.watermark import Watermark
from ..pipelines import TextPipeline

__all__ = ["TextEngine", "TextRequest", "TextSink", "QueueFull"]

log = logging.getLogger("aigckit.serving.text")


class QueueFull(AigcError):
    """The engine's queue is full: the request was not queued; send it again later (HTTP 429)."""

    retry_after = 1  # seconds a client is asked to wait


class TextSink(Protocol):
    """Where the engine writes one request's progress (a server Job implements it)."""

    cancelled: threading.Event

    def set_running(self) -> None: ...

    def emit_text(self, piece: str) -> None: ...

    def finish(self, result: dict) -> None: ...

    def fail(self, message: str) -> None: ...


@dataclass
class TextRequest:
    """One completion: the options of TextPipeline.stream (greedy: the most likely token at every step)."""

    prompt: str
    max_new_tokens: int = 200
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None  # None: a fresh random seed
    watermark: Watermark | None = None
    greedy: bool = False


@dataclass
class _Row:
    """A request in the engine: waiting (logits None) or decoding."""

    request: TextRequest
    sink: Any
    prompt_ids: list[int]  # what the model reads: the prompt's tokens, or [0] for an empty prompt
    prompt_tokens: int
    generator: torch.Generator | None = None
    seen: list[int] = field(default_factory=list)  # prompt and new tokens
    new: list[int] = field(default_factory=list)
    text: str = ""  # the decoded new tokens
    sent: int = 0  # characters of text already emitted
    logits: Tensor | None = None  # (1, V) of the next token

    @property
    def plain_greedy(self) -> bool:
        """Greedy with nothing that depends on the row's history: its token can be chosen with other rows'."""
        r = self.request
        return r.greedy and r.repetition_penalty == 1.0 and r.watermark is None


# ---------------------------------------------------------------- the batch of rows, per kind of model
class _GPTRows:
    """GPT rows over one BatchKVCache."""

    def __init__(self, model: GPT, max_rows: int) -> None:
        self.model, self.cache = model, BatchKVCache(model.config, max_rows)

    def add(self, past: Any) -> None:
        self.cache.add(past)

    def remove(self, row: int) -> None:
        self.cache.remove(row)

    def step(self, tokens: Tensor) -> Tensor:
        return self.model(tokens[:, None], self.cache)[0][:, -1]


class _LSTMRows:
    """LSTM rows: the recurrent state (h, c), (n_layer, n, hidden) each, one column per row."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.state = model, None

    def add(self, past: tuple[Tensor, Tensor]) -> None:
        self.state = past if self.state is None else tuple(torch.cat([s, p], dim=1) for s, p in zip(self.state, past))

    def remove(self, row: int) -> None:
        last = self.state[0].shape[1] - 1
        if last == 0:
            self.state = None
            return
        for s in self.state:
            s[:, row] = s[:, last]  # the last row moves into the freed one, as BatchKVCache does
        self.state = tuple(s[:, :last] for s in self.state)

    def step(self, tokens: Tensor) -> Tensor:
        logits, self.state = self.model(tokens[:, None], self.state)
        return logits[:, -1]


class _OneRow:
    """Any other model (a transformers causal LM): one row, through the model's own cache."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.past = model, None

    def add(self, past: Any) -> None:
        self.past = past

    def remove(self, row: int) -> None:
        self.past = None

    def step(self, tokens: Tensor) -> Tensor:
        logits, self.past = self.model(tokens[:, None], self.past)
        return logits[:, -1]


def _rows_for(model: nn.Module, max_rows: int) -> tuple[Any, int]:
    """The batch of `model`'s kind and how many rows it holds."""
    if isinstance(model, GPT):
        return _GPTRows(model, max_rows), max_rows
    if isinstance(model, LSTMLanguageModel):
        return _LSTMRows(model), max_rows
    return _OneRow(model), 1


# ---------------------------------------------------------------- the engine
class TextEngine:
    """Continuous batching over one TextPipeline: submit() queues, a daemon worker thread decodes.

    max_batch: rows decoded together (a transformers model other than GPT-2 decodes one at a time);
    max_queue: requests that may wait; beyond it submit raises QueueFull.
    on_batch: called after every decoding step with (requests, rows) of that step (both the batch size).
    """

    def __init__(self, pipeline: TextPipeline, *, max_batch: int = 32, max_queue: int = 64,
                 on_batch: Callable[[int, int], None] | None = None) -> None:
        if max_batch < 1 or max_queue < 0:
            raise AigcError(f"max_batch must be at least 1 and max_queue at least 0, got {max_batch} and {max_queue}")
        if getattr(pipeline.model.config, "objective", "causal") == "mlm":
            raise AigcError("this run is a masked-LM encoder: it fills in masked tokens but does not continue text; "
                            "serve a causal language model")
        self.pipeline, self.model, self.tokenizer = pipeline, pipeline.model, pipeline.tokenizer
        self.device = next(self.model.parameters()).device
        self.max_queue, self.on_batch = max_queue, on_batch
        self._rows_impl, self.max_batch = _rows_for(self.model, max_batch)
        # a GPT row past its context slides its window alone (see the module docstring)
        self._window = self.model.context_size if self.model.slides_window else None
        # a character tokenizer's text grows by one token's text per step; others' is decoded whole each step
        self._one_char_per_token = isinstance(self.tokenizer, CharTokenizer)
        self._waiting: deque[_Row] = deque()
        self._rows: list[_Row] = []  # decoding, in any order
        self._batched: list[_Row] = []  # the rows in the batch, in the batch's order
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._cancel_on_stop = False
        self._thread: threading.Thread | None = None
        self.steps = 0  # decoding steps run (forward passes of the batch)

    # ---------------------------------------------------------------- the caller's side
    @property
    def queue_depth(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiting)

    @property
    def active(self) -> int:
        """Rows decoding now."""
        return len(self._rows)

    def start(self) -> None:
        """Start the worker thread (a daemon)."""
        if self._thread is not None:
            raise AigcError("the text engine is already started")
        self._thread = threading.Thread(target=self._run, name="text-engine", daemon=True)
        self._thread.start()

    def stop(self, *, cancel: bool = False, timeout: float | None = None) -> None:
        """Stop taking requests, fail the waiting ones, finish the running ones (or fail them too when `cancel`),
        then join the worker."""
        with self._wake:
            self._stopping, self._cancel_on_stop = True, self._cancel_on_stop or cancel
            waiting, self._waiting = list(self._waiting), deque()
            self._wake.notify_all()
        for row in waiting:
            _call(row.sink.fail, "the server is shutting down; send the request again")
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, request: TextRequest, sink: Any) -> None:
        """Queue `request`; its progress goes to `sink`. Raises AigcError for options the model cannot serve (as
        TextPipeline.stream does) and QueueFull when max_queue requests wait already."""
        row = self._check(request, sink)
        with self._wake:
            if self._stopping:
                raise AigcError("the text engine is shutting down; send the request again later")
            self._drop_cancelled_waiting()
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"{len(self._waiting)} requests are waiting for this model already, the most it "
                                f"queues; retry in a moment")
            self._waiting.append(row)
            self._wake.notify()

    def position(self, item: Any) -> int | None:
        """Place in the queue (0: next) of the request whose sink is `item`, or whose sink's `job` is `item`;
        None once it runs."""
        with self._lock:
            waiting = [row for row in self._waiting if not row.sink.cancelled.is_set()]
        for i, row in enumerate(waiting):
            if row.sink is item or getattr(row.sink, "job", None) is item:
                return i
        return None

    def _check(self, request: TextRequest, sink: Any) -> _Row:
        """The request as a row, or AigcError in one line (the checks of TextPipeline.stream)."""
        check_generation_options(max_new_tokens=request.max_new_tokens, temperature=request.temperature,
                                 top_k=request.top_k, top_p=request.top_p,
                                 repetition_penalty=request.repetition_penalty)
        if any(s == "" for s in request.stop):
            raise AigcError("a stop string is empty; give the text to stop at")
        if request.watermark is not None:
            self.pipeline.check_watermark(request.watermark)
        ids = self.tokenizer.encode(request.prompt)
        prompt_ids = ids or [0]
        check_context(self.model, len(prompt_ids), request.max_new_tokens)
        return _Row(request, sink, prompt_ids, len(ids))

    def _drop_cancelled_waiting(self) -> None:
        if any(row.sink.cancelled.is_set() for row in self._waiting):
            self._waiting = deque(row for row in self._waiting if not row.sink.cancelled.is_set())

    # ---------------------------------------------------------------- the worker
    def run_until_idle(self) -> None:
        """Decode everything queued in the calling thread, until nothing waits or runs (scripts and profilers;
        the worker thread must not be started)."""
        if self._thread is not None:
            raise AigcError("the engine's worker thread is running; wait for the requests' results instead")
        with torch.inference_mode():
            while self._waiting or self._rows:
                self._work()

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                with self._wake:
                    if self._stopping and (self._cancel_on_stop or not self._rows):
                        break
                    if not self._rows and not self._waiting:
                        self._wake.wait()
                        continue
                self._work()
        self._fail_all("the server is shutting down; the request was cancelled")

    def _work(self) -> None:
        """Admit the waiting requests that fit, then one decoding step."""
        with self._lock:
            self._drop_cancelled_waiting()
            admitted = []
            while self._waiting and len(self._rows) + len(admitted) < self.max_batch:
                admitted.append(self._waiting.popleft())
        for row in admitted:
            self._admit(row)
        if self._rows:
            try:
                self._step()
            except Exception as error:  # a bug or an exhausted device: fail the rows, keep serving
                log.exception("text decoding step failed")
                self._fail_all(f"text generation failed: {_one_line(error)}")

    def _forward(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self.pipeline.precision.autocast(self.device):  # entered per call, never left on
            return fn(*args)

    def _admit(self, row: _Row) -> None:
        """Prefill the row's prompt alone, then add its cache to the batch."""
        if row.sink.cancelled.is_set():
            return
        try:
            row.sink.set_running()
            request = row.request
            if not request.greedy:
                row.generator = torch.Generator()
                if request.seed is None:
                    row.generator.seed()  # a fresh random seed
                else:
                    row.generator.manual_seed(request.seed)
            row.seen = list(row.prompt_ids)
            prompt = torch.tensor([row.prompt_ids], device=self.device)
            logits, past = self._forward(self.model, prompt, None, True)
            row.logits = logits[:, -1]
            self._rows_impl.add(past)
        except Exception as error:
            log.exception("text prefill failed")
            _call(row.sink.fail, f"text generation failed: {_one_line(error)}")
            return
        self._rows.append(row)
        self._batched.append(row)

    def _step(self) -> None:
        """Choose a token for every row, emit text, drop ended rows, then one forward pass of the batch."""
        for row in [row for row in self._rows if row.sink.cancelled.is_set()]:
            self._remove(row)
        rows = list(self._rows)
        for row, token in zip(rows, self._choose(rows)):
            row.new.append(token)
            row.seen.append(token)
        ended = [row for row in rows if not self._advance(row)]
        for row in ended:
            self._remove(row)
        # cancelled while their text was emitted (by another thread, or by the sink): no forward pass either
        for row in [row for row in self._rows if row.sink.cancelled.is_set()]:
            self._remove(row)
        sliding = [row for row in self._rows if self._window is not None and len(row.seen) > self._window]
        for row in sliding:
            if row in self._batched:
                self._leave_batch(row)
        if self._batched:
            tokens = torch.tensor([row.seen[-1] for row in self._batched], device=self.device)
            logits = self._forward(self._rows_impl.step, tokens)
            for i, row in enumerate(self._batched):
                row.logits = logits[i:i + 1]
            self.steps += 1
            if self.on_batch is not None:
                self.on_batch(len(self._batched), len(self._batched))
        for row in sliding:  # as generate_tokens: the last block_size positions, recomputed
            window = torch.tensor([row.seen[-self._window:]], device=self.device)
            row.logits = self._forward(self.model, window, None, True)[0][:, -1]

    def _choose(self, rows: list[_Row]) -> list[int]:
        """The next token of every row: plain greedy rows together, the others each with its own options."""
        allowed = self.tokenizer.vocab_size  # a padded embedding's extra ids are no tokens: never choose them
        tokens: list[int | None] = [None] * len(rows)
        plain = [i for i, row in enumerate(rows) if row.plain_greedy]
        if plain:
            logits = torch.cat([rows[i].logits for i in plain])
            for i, token in zip(plain, choose_tokens(logits, None, greedy=True, allowed_tokens=allowed).tolist()):
                tokens[i] = token
        for i, row in enumerate(rows):
            if tokens[i] is None:
                r = row.request
                seen = torch.tensor([row.seen], device=self.device)
                tokens[i] = int(choose_tokens(row.logits, seen, greedy=r.greedy, temperature=r.temperature,
                                              top_k=r.top_k, top_p=r.top_p, repetition_penalty=r.repetition_penalty,
                                              generator=row.generator, watermark=r.watermark,
                                              allowed_tokens=allowed)[0])
        return tokens

    def _advance(self, row: _Row) -> bool:
        """Decode the row's new token and emit what is safe (as TextPipeline.stream); False when the row ended
        (finished, or its sink failed)."""
        stop = row.request.stop
        try:
            if self._one_char_per_token:
                row.text = text = row.text + self.tokenizer.decode(row.new[-1:])
            else:  # decode the whole tail: BPE pieces can split characters
                row.text = text = self.tokenizer.decode(row.new)
            if stop:
                hits = [text.find(s) for s in stop if s in text]
                if hits:
                    end = min(hits)
                    if end > row.sent:
                        row.sink.emit_text(text[row.sent:end])
                    row.sink.finish(self._result(row, text[:end], "stop"))
                    return False
            # hold back what may still turn into a stop string or complete a multi-byte character
            hold = max((k for s in stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0) if stop else 0
            safe = len(text) - max(hold, 1 if text.endswith("\ufffd") else 0)
            last = len(row.new) == row.request.max_new_tokens
            if last:
                safe = len(text)
            if safe > row.sent:
                row.sink.emit_text(text[row.sent:safe])
                row.sent = safe
            if last:
                row.sink.finish(self._result(row, text, "length"))
                return False
            return True
        except Exception as error:  # the sink broke (its client is gone): the row ends
            log.exception("a text sink failed")
            _call(row.sink.fail, f"text generation failed: {_one_line(error)}")
            return False

    def _result(self, row: _Row, text: str, reason: str) -> dict:
        return {"text": text, "finish_reason": reason, "prompt_tokens": row.prompt_tokens,
                "completion_tokens": len(row.new)}

    def _leave_batch(self, row: _Row) -> None:
        """Take `row` out of the batch (its slot is free at once); the last row moves into its place."""
        index = self._batched.index(row)
        self._rows_impl.remove(index)
        last = self._batched.pop()
        if index < len(self._batched):
            self._batched[index] = last

    def _remove(self, row: _Row) -> None:
        if row in self._batched:
            self._leave_batch(row)
        self._rows.remove(row)

    def _fail_all(self, message: str) -> None:
        """Fail every decoding row and start again with an empty batch."""
        rows, self._rows, self._batched = self._rows, [], []
        self._rows_impl, _ = _rows_for(self.model, self.max_batch)
        for row in rows:
            if not row.sink.cancelled.is_set():
                _call(row.sink.fail, message)


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _call(fn: Callable[[str], None], message: str) -> None:
    """Tell a sink, which may itself be broken."""
    try:
        fn(message)
    except Exception:
        log.exception("a text sink failed")
