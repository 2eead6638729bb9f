"""The continuous-batching text engine: each request's output is what TextPipeline gives it alone."""

from __future__ import annotations

import threading

import pytest
import torch

from aigckit.data.tokenizers import CharTokenizer
from aigckit.errors import AigcError
from aigckit.family import FAMILIES
from aigckit.models.lm import LMConfig
from aigckit.models.lm.gpt import BatchKVCache
from aigckit.models.lm.watermark import Watermark
from aigckit.pipelines import TextPipeline
from aigckit.serving.text_engine import QueueFull, TextEngine, TextRequest

TEXT = ("The quick brown fox jumps over the lazy dog. A language model continues text one token at a time; "
        "continuous batching decodes many requests together, admitting new ones between steps.")
TOKENIZER = CharTokenizer.train(TEXT)
BLOCK = 32  # short, so that long requests slide their window past it


def tiny_pipeline(name: str, positions: str = "learned") -> TextPipeline:
    """A randomly initialised tiny model (weights ~ N(0, 0.3), so that logits differ clearly) over the char
    tokenizer, its embedding padded by 3 ids that are no tokens."""
    torch.manual_seed(0)
    config = LMConfig(name=name, vocab_size=TOKENIZER.vocab_size + 3, block_size=BLOCK, n_layer=2, n_head=2,
                      n_embd=32, hidden_size=32, positions=positions)
    model = FAMILIES.get("lm").build(config)
    for p in model.parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, 0.0, 0.3)
    return TextPipeline(model.eval(), TOKENIZER)


MODELS = [("gpt", "learned"), ("gpt", "rotary"), ("lstm", "learned")]


@pytest.fixture(scope="module", params=MODELS, ids=["gpt-learned", "gpt-rotary", "lstm"])
def pipeline(request):
    return tiny_pipeline(*request.param)


class Sink:
    """What a server Job does for the engine: records pieces, the result or the error."""

    def __init__(self, on_piece=None) -> None:
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self.running = False
        self.pieces: list[str] = []
        self.result: dict | None = None
        self.error: str | None = None
        self.on_piece = on_piece

    def set_running(self) -> None:
        self.running = True

    def emit_text(self, piece: str) -> None:
        self.pieces.append(piece)
        if self.on_piece is not None:
            self.on_piece(self)

    def finish(self, result: dict) -> None:
        self.result = result
        self.done.set()

    def fail(self, message: str) -> None:
        self.error = message
        self.done.set()


def wait(*sinks: Sink) -> None:
    for sink in sinks:
        assert sink.done.wait(60), "the engine did not finish the request"
        assert sink.error is None, sink.error


def run_together(pipeline: TextPipeline, requests: list[TextRequest], **engine_options) -> list[Sink]:
    """Queue every request before the worker starts, so that they are admitted into one batch."""
    sizes = []
    engine = TextEngine(pipeline, on_batch=lambda jobs, rows: sizes.append(rows), **engine_options)
    sinks = [Sink() for _ in requests]
    for request, sink in zip(requests, sinks):
        engine.submit(request, sink)
    engine.start()
    try:
        wait(*sinks)
    finally:
        engine.stop()
    # they did decode together (a request of one token needs no forward pass after its prefill)
    assert max(sizes) == min(sum(r.max_new_tokens > 1 for r in requests), engine.max_batch)
    return sinks


def alone(pipeline: TextPipeline, request: TextRequest) -> str:
    options = {"watermark": request.watermark} if request.watermark is not None else {}
    return pipeline.generate(request.prompt, max_new_tokens=request.max_new_tokens, seed=request.seed,
                             stop=request.stop, greedy=request.greedy, temperature=request.temperature,
                             top_k=request.top_k, top_p=request.top_p,
                             repetition_penalty=request.repetition_penalty, **options)


def mixed_requests(pipeline: TextPipeline, greedy: bool) -> list[TextRequest]:
    mark = pipeline.watermark(7)
    seeds = iter(range(100, 200))

    def request(prompt, max_new_tokens, **options):
        return TextRequest(prompt, max_new_tokens, greedy=greedy, seed=None if greedy else next(seeds), **options)

    return [
        request("The", 45),  # 3 + 45 > 32: a GPT slides its window
        request("A language model continues", 12, repetition_penalty=1.5),
        request("", 20),  # an empty prompt reads token 0
        request("quick brown", 25, watermark=mark),
        request("dog", 30, temperature=0.7, top_k=8),
        request("many requests", 18, top_p=0.8, repetition_penalty=1.2, watermark=mark),
        request("x", 1),
    ]


def test_batched_greedy_output_of_every_request_equals_the_request_alone(pipeline):
    requests = mixed_requests(pipeline, greedy=True)
    sinks = run_together(pipeline, requests)
    for request, sink in zip(requests, sinks):
        expected = alone(pipeline, request)
        assert sink.result["text"] == expected == "".join(sink.pieces)
        assert sink.result["finish_reason"] == "length"
        assert sink.result["completion_tokens"] == request.max_new_tokens
        assert sink.result["prompt_tokens"] == len(request.prompt)
        assert sink.running
    assert len({sink.result["text"] for sink in sinks}) > 3  # the model does not say the same thing to everyone


def test_seeded_sampling_does_not_depend_on_batch_mates(pipeline):
    requests = mixed_requests(pipeline, greedy=False)
    together = run_together(pipeline, requests)
    for request, sink in zip(requests, together):
        assert sink.result["text"] == alone(pipeline, request)
    # the same request beside other batch-mates, and in batches of 2
    shuffled = requests[::-1]
    again = run_together(pipeline, shuffled, max_batch=2)
    assert [s.result["text"] for s in again] == [s.result["text"] for s in together][::-1]


def test_a_request_admitted_while_others_decode_gets_its_own_output(pipeline):
    first = TextRequest("The quick", 40, seed=1, top_k=10)
    second = TextRequest("brown", 30, greedy=True, repetition_penalty=1.3)
    submitted = threading.Event()
    sizes = []

    def hold(sink):  # in the worker thread: block the first request mid-way until the second is queued
        if len(sink.pieces) == 5:
            assert submitted.wait(30)

    engine = TextEngine(pipeline, on_batch=lambda jobs, rows: sizes.append(rows))
    sinks = [Sink(hold), Sink()]
    engine.submit(first, sinks[0])
    engine.start()
    try:
        while len(sinks[0].pieces) < 5:
            assert not sinks[0].done.is_set()
            threading.Event().wait(0.001)
        assert engine.active == 1
        engine.submit(second, sinks[1])
        submitted.set()
        wait(*sinks)
    finally:
        engine.stop()
    assert sizes[:4] == [1, 1, 1, 1] and 2 in sizes  # decoded alone at first, then together
    assert sinks[0].result["text"] == alone(pipeline, first)
    assert sinks[1].result["text"] == alone(pipeline, second)


def test_a_cancelled_request_frees_its_slot_within_one_step(pipeline):
    calls = []  # (rows in the forward pass, whether the first request was cancelled by then)
    sinks = []

    def cancel_at_third_piece(sink):  # the cancel arrives while the engine emits the request's text
        if len(sink.pieces) == 3:
            sink.cancelled.set()

    hook = pipeline.model.register_forward_pre_hook(
        lambda module, args: calls.append((args[0].shape, sinks[0].cancelled.is_set())))
    engine = TextEngine(pipeline, max_batch=2)
    sinks += [Sink(cancel_at_third_piece), Sink(), Sink()]
    for prompt, sink in zip(["The", "quick", "brown"], sinks):
        engine.submit(TextRequest(prompt, 25, greedy=True), sink)
    engine.start()
    try:
        wait(*sinks[1:])
    finally:
        engine.stop()
        hook.remove()
    assert len(sinks[0].pieces) == 3 and sinks[0].result is None and sinks[0].error is None
    after = [shape for shape, cancelled in calls if cancelled]
    # the step in which the cancel came ran the batch without it; the waiting request was prefilled next
    assert after[0] == (1, 1) and after[1] == (1, len("brown"))
    together = sum(shape == (2, 1) for shape in after)  # then the second and third decoded together
    assert together > 10 and after[2:2 + together] == [(2, 1)] * together
    assert all(shape == (1, 1) for shape in after[2 + together:])  # and the third alone once the second ended
    assert engine.active == 0 and engine.queue_depth == 0


def test_run_until_idle_decodes_in_the_calling_thread():
    pipeline = tiny_pipeline("gpt", "rotary")
    engine = TextEngine(pipeline, max_batch=2)
    requests = [TextRequest("The", 10, greedy=True), TextRequest("dog", 12, seed=5), TextRequest("", 8, seed=6)]
    sinks = [Sink() for _ in requests]
    for request, sink in zip(requests, sinks):
        engine.submit(request, sink)
    engine.run_until_idle()
    assert [s.result["text"] for s in sinks] == [alone(pipeline, r) for r in requests]
    engine.start()
    with pytest.raises(AigcError, match="worker thread is running"):
        engine.run_until_idle()
    engine.stop()


def test_a_request_cancelled_while_waiting_is_never_run(pipeline):
    engine = TextEngine(pipeline, max_queue=2)
    sinks = [Sink(), Sink()]
    for sink in sinks:
        engine.submit(TextRequest("The", 5, greedy=True), sink)
    sinks[0].cancelled.set()
    assert engine.position(sinks[1]) == 0
    engine.submit(TextRequest("The", 5, greedy=True), Sink())  # the cancelled one's place is free
    engine.start()
    try:
        wait(sinks[1])
    finally:
        engine.stop()
    assert not sinks[0].running and sinks[0].result is None


def test_stop_strings_end_the_text_and_are_held_back_as_stream_does(pipeline):
    full = pipeline.generate("The", max_new_tokens=30, greedy=True)
    stop = full[12:14]
    assert len(stop) == 2 and full.index(stop) > 2
    requests = [TextRequest("The", 30, greedy=True, stop=[stop, "never said"]),
                TextRequest("The", 30, greedy=True, stop=["never said"]),
                TextRequest("The", 30, seed=3, stop=[stop])]
    sinks = run_together(pipeline, requests)
    for request, sink in zip(requests, sinks):
        streamed = [piece for piece in pipeline.stream(request.prompt, max_new_tokens=30, seed=request.seed,
                                                       greedy=request.greedy, stop=request.stop) if piece]
        assert sink.pieces == streamed
        assert sink.result["text"] == "".join(streamed)
    assert sinks[0].result["text"] == full[:full.index(stop)] and sinks[0].result["finish_reason"] == "stop"
    assert sinks[0].result["completion_tokens"] == full.index(stop) + 2
    assert sinks[1].result["text"] == full and sinks[1].result["finish_reason"] == "length"


def test_the_queue_is_bounded():
    engine = TextEngine(tiny_pipeline("gpt"), max_queue=2)  # not started: requests wait
    engine.submit(TextRequest("The", 5), Sink())
    engine.submit(TextRequest("The", 5), Sink())
    assert engine.queue_depth == 2
    with pytest.raises(QueueFull, match="2 requests are waiting"):
        engine.submit(TextRequest("The", 5), Sink())
    assert issubclass(QueueFull, AigcError)


@pytest.mark.parametrize("options, message", [
    ({"temperature": 0.0}, "temperature must be a positive number"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"top_k": 0}, "top_k must be at least 1"),
    ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
    ({"repetition_penalty": -1.0}, "repetition_penalty must be a positive number"),
    ({"stop": ["ok", ""]}, "a stop string is empty"),
    ({"prompt": "The " * 20}, "the prompt is 80 tokens, longer than the model's context of 32"),
])
def test_requests_the_model_cannot_serve_are_refused_in_submit(options, message):
    engine = TextEngine(tiny_pipeline("gpt"))
    fields = {"prompt": "The", "max_new_tokens": 5, **options}
    with pytest.raises(AigcError, match=message) as error:
        engine.submit(TextRequest(**fields), Sink())
    assert "\n" not in str(error.value) and engine.queue_depth == 0


def test_a_watermark_key_of_another_vocabulary_is_refused_in_submit():
    engine = TextEngine(tiny_pipeline("lstm"))
    with pytest.raises(AigcError, match="vocabulary of 99 tokens"):
        engine.submit(TextRequest("The", 5, watermark=Watermark(key=1, vocab_size=99)), Sink())


def test_stop_finishes_running_requests_or_cancels_them(pipeline):
    for cancel in (False, True):
        started = threading.Event()
        engine = TextEngine(pipeline, max_batch=1)
        running, waiting = Sink(lambda sink: started.set()), Sink()
        engine.submit(TextRequest("The", 200 if cancel else 20, greedy=True), running)
        engine.submit(TextRequest("dog", 5, greedy=True), waiting)
        engine.start()
        assert started.wait(30)
        engine.stop(cancel=cancel)
        assert waiting.error is not None and "shutting down" in waiting.error
        assert (running.error is not None) == cancel and (running.result is not None) != cancel
        with pytest.raises(AigcError, match="shutting down"):
            engine.submit(TextRequest("The", 5), Sink())


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_one_batched_step_gives_each_row_the_logits_of_its_own_sequence(positions):
    model = tiny_pipeline("gpt", positions).model
    prompts = [torch.randint(0, 20, (1, length), generator=torch.Generator().manual_seed(length))
               for length in (3, 11, 1, 7)]
    nexts = torch.tensor([[4], [5], [6], [7]])
    cache = BatchKVCache(model.config, max_rows=4)
    with torch.inference_mode():
        for prompt in prompts:
            cache.add(model(prompt, use_cache=True)[1])
        batched, _ = model(nexts, cache)
        alone = [model(torch.cat([p, n[None]], dim=1))[0][:, -1] for p, n in zip(prompts, nexts)]
        assert torch.allclose(batched[:, 0], torch.cat(alone), atol=1e-5)
        assert cache.lengths == [4, 12, 2, 8]
        cache.remove(1)  # the last row moves into the freed one
        batched, _ = model(nexts[[0, 3, 2]], cache)
        alone = [model(torch.cat([p, n[None], n[None]], dim=1))[0][:, -1]
                 for p, n in zip([prompts[0], prompts[3], prompts[2]], nexts[[0, 3, 2]])]
        assert torch.allclose(batched[:, 0], torch.cat(alone), atol=1e-5)


def test_a_transformers_model_decodes_one_request_at_a_time(tmp_path):
    import transformers

    from aigckit.models.lm.hf import TransformersCausalLM

    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=TOKENIZER.vocab_size + 3, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                      max_position_embeddings=64, bos_token_id=0, eos_token_id=0)
    reference = transformers.AutoModelForCausalLM.from_config(config)
    for p in reference.parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, 0.0, 0.3)
    reference.save_pretrained(tmp_path)
    pipeline = TextPipeline(TransformersCausalLM(LMConfig(name="hf", pretrained=str(tmp_path))), TOKENIZER)
    requests = [TextRequest("The", 12, greedy=True), TextRequest("quick", 10, seed=4, top_k=5),
                TextRequest("dog", 8, seed=2, stop=["e"])]
    sinks = run_together(pipeline, requests)  # asserts the batches held one row
    for request, sink in zip(requests, sinks):
        assert sink.result["text"] == alone(pipeline, request)
    with pytest.raises(AigcError, match="exceed the model's context of 64"):
        TextEngine(pipeline).submit(TextRequest("The", 62), Sink())
