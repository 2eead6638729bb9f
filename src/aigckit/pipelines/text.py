"""Complete text with a trained language model: `aigckit.load(run_dir).generate("Once")`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.tokenizers import load_tokenizer
from ..errors import AigcError
from ..models.lm.generation import beam_search, generate_tokens

__all__ = ["TextPipeline"]


class TextPipeline:
    """A trained language model and its tokenizer."""

    def __init__(self, model: nn.Module, tokenizer: Any, checkpoint: Path | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.checkpoint = checkpoint

    @classmethod
    def from_run(cls, model: nn.Module, checkpoint: Path) -> TextPipeline:
        """Find the tokenizer saved with the run (beside the checkpoints) or in the checkpoint itself."""
        for folder in (checkpoint, checkpoint.parent.parent):
            if (folder / "tokenizer.json").is_file():
                return cls(model, load_tokenizer(folder), checkpoint)
        raise AigcError(f"no tokenizer.json in {checkpoint} or its run directory; the run is incomplete")

    @classmethod
    def from_transformers(cls, directory: Path) -> TextPipeline:
        """A local `transformers` model directory: GPT-2 runs as our GPT (same logits, our KV cache), any
        other causal LM through transformers itself."""
        from ..models.lm.config import LMConfig
        from ..models.lm.hf import TransformersCausalLM, gpt_from_transformers

        directory = Path(directory)
        model_type = json.loads((directory / "config.json").read_text(encoding="utf-8"))["model_type"]
        if model_type == "gpt2":
            model = gpt_from_transformers(directory)
        else:
            model = TransformersCausalLM(LMConfig(name="hf", pretrained=str(directory)))
        return cls(model, load_tokenizer(directory), directory)

    def stream(self, prompt: str, *, max_new_tokens: int = 200, seed: int | None = None,
               stop: list[str] | None = None, num_beams: int = 1, **options: Any) -> Iterator[str]:
        """Yield the completion piece by piece (one decoded token at a time) until a stop string or the limit.

        num_beams > 1 runs beam search instead of sampling and yields the whole completion at once.
        """
        if getattr(self.model.config, "objective", "causal") == "mlm":
            raise AigcError("this run is a masked-LM encoder: it fills in masked tokens "
                            "(aigckit.models.lm.fill_masks) but does not continue text; train with "
                            "model.objective=causal to generate")
        ids = self.tokenizer.encode(prompt) or [0]
        device = next(self.model.parameters()).device
        prompt_ids = torch.tensor([ids], device=device)
        if num_beams > 1:
            if options.get("watermark") is not None:
                raise AigcError("the watermark biases sampling; use it without beam search (--num-beams 1)")
            text = self.tokenizer.decode(beam_search(self.model, prompt_ids, max_new_tokens=max_new_tokens,
                                                     num_beams=num_beams).tolist())
            hits = [text.find(s) for s in stop or [] if s and s in text]
            yield text[:min(hits)] if hits else text
            return
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        new: list[int] = []
        sent = 0  # characters of the completion already yielded
        text = ""
        for token in generate_tokens(self.model, prompt_ids, max_new_tokens=max_new_tokens, generator=generator,
                                     **options):
            new.append(int(token[0]))
            text = self.tokenizer.decode(new)  # decode the whole tail: BPE pieces can split characters
            hits = [text.find(s) for s in stop or [] if s and s in text]
            if hits:
                yield text[sent:min(hits)]
                return
            # hold back what may still turn into a stop string or complete a multi-byte character
            hold = max((k for s in stop or [] for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
            safe = len(text) - max(hold, 1 if text.endswith("\ufffd") else 0)
            if safe > sent:
                yield text[sent:safe]
                sent = safe
        if len(text) > sent:
            yield text[sent:]

    def generate(self, prompt: str, **options: Any) -> str:
        """The completion of `prompt` as one string (see `stream` for the options)."""
        return "".join(self.stream(prompt, **options))
