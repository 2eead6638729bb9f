"""Text work of the server: OpenAI completion and chat bodies <-> the text engine's requests.

Chat template: a model without one of its own (every aigckit run) reads the messages' contents joined with newlines,
followed by a newline, and continues from there; the roles are not written. A transformers tokenizer's own chat
template is used when the directory has one.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from pathlib import Path
from typing import Any

from ..pipelines import TextPipeline
from .jobs import Job
from .schemas import ChatCompletionRequest, CompletionRequest

__all__ = ["chat_prompt", "text_requests", "completion_body", "chat_body", "completion_chunk", "chat_chunk"]


@functools.lru_cache(maxsize=16)
def _templating_tokenizer(directory: str) -> Any:
    """The transformers tokenizer of a model folder whose tokenizer_config.json has a chat template, else None."""
    config = Path(directory) / "tokenizer_config.json"
    if not config.is_file() or not json.loads(config.read_text(encoding="utf-8")).get("chat_template"):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory)


def chat_prompt(pipeline: TextPipeline, request: ChatCompletionRequest) -> str:
    """The prompt a chat becomes for `pipeline`'s model (see the module docstring)."""
    tokenizer = _templating_tokenizer(str(pipeline.checkpoint))
    if tokenizer is not None:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n".join(m.content for m in request.messages) + "\n"


def text_requests(pipeline: TextPipeline, request: CompletionRequest | ChatCompletionRequest, prompts: list[str],
                  max_tokens: int) -> list[Any]:
    """One engine request per choice: n per prompt, the i-th with seed + i (a seed is drawn when none was given)."""
    from .text_engine import TextRequest

    seed = secrets.randbits(52) if request.seed is None else request.seed
    watermark = pipeline.watermark(request.watermark) if request.watermark is not None else None
    greedy = request.temperature == 0  # OpenAI's temperature 0 is the most likely token
    requests = []
    for prompt in prompts:
        for _ in range(request.n):
            requests.append(TextRequest(
                prompt=prompt, max_new_tokens=max_tokens, temperature=1.0 if greedy else request.temperature,
                top_k=request.top_k, top_p=None if request.top_p >= 1.0 else request.top_p,
                repetition_penalty=request.repetition_penalty, stop=request.stop_list(), seed=seed + len(requests),
                watermark=watermark, greedy=greedy))
    return requests


def _usage(job: Job) -> dict[str, int]:
    prompt = sum(c["prompt_tokens"] for c in job.choices.values())
    completion = sum(c["completion_tokens"] for c in job.choices.values())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_body(job: Job) -> dict[str, Any]:
    """The /v1/completions response of a finished text job."""
    choices = [{"index": i, "text": c["text"], "finish_reason": c["finish_reason"], "logprobs": None}
               for i, c in sorted(job.choices.items())]
    return {"id": f"cmpl-{job.id}", "object": "text_completion", "created": int(job.created), "model": job.model_id,
            "choices": choices, "usage": _usage(job)}


def chat_body(job: Job) -> dict[str, Any]:
    """The /v1/chat/completions response of a finished text job."""
    choices = [{"index": i, "message": {"role": "assistant", "content": c["text"]},
                "finish_reason": c["finish_reason"], "logprobs": None} for i, c in sorted(job.choices.items())]
    return {"id": f"chatcmpl-{job.id}", "object": "chat.completion", "created": int(job.created),
            "model": job.model_id, "choices": choices, "usage": _usage(job)}


def completion_chunk(job: Job, index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    """One server-sent event of a streamed completion."""
    return {"id": f"cmpl-{job.id}", "object": "text_completion", "created": int(job.created), "model": job.model_id,
            "choices": [{"index": index, "text": text, "finish_reason": finish_reason, "logprobs": None}]}


def chat_chunk(job: Job, index: int, delta: dict, finish_reason: str | None) -> dict[str, Any]:
    """One server-sent event of a streamed chat completion."""
    return {"id": f"chatcmpl-{job.id}", "object": "chat.completion.chunk", "created": int(job.created),
            "model": job.model_id,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}


def usage_chunk(job: Job, chat: bool) -> dict[str, Any]:
    """The last chunk when stream_options.include_usage is set: no choices, the usage."""
    return {"id": f"{'chatcmpl' if chat else 'cmpl'}-{job.id}",
            "object": "chat.completion.chunk" if chat else "text_completion", "created": int(time.time()),
            "model": job.model_id, "choices": [], "usage": _usage(job)}
