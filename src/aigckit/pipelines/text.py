"""Complete text with a trained language model: `aigckit.load(run_dir).generate("Once")`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.tokenizers import load_tokenizer, tokenizer_sha256
from ..errors import AigcError
from ..precision import FP32, Precision, resolve_precision
from ..models.lm.generation import beam_search, check_context, check_generation_options, generate_tokens
from ..models.lm.watermark import Watermark

__all__ = ["TextPipeline"]


class TextPipeline:
    """A trained language model and its tokenizer."""

    def __init__(self, model: nn.Module, tokenizer: Any, checkpoint: Path | None = None,
                 precision: Precision = FP32) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.checkpoint = checkpoint
        self.precision = precision  # generation runs its forward passes in this precision
        if tokenizer.vocab_size > model.logits_size:
            raise AigcError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model only {model.logits_size}; "
                            f"they do not belong together")

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
        tokenizer = load_tokenizer(directory)  # before the weights: a directory without a tokenizer fails fast
        if model_type == "gpt2":
            model = gpt_from_transformers(directory)
        else:
            model = TransformersCausalLM(LMConfig(name="hf", pretrained=str(directory)))
        return cls(model, tokenizer, directory)

    @classmethod
    def load(cls, run_dir: str | Path, *, base_model: str | Path | None = None, use_ema: bool = True,
             device: str | torch.device = "cpu", precision: str = "auto") -> TextPipeline:
        """A language-model run (or a transformers directory), as `aigckit.load`; `base_model`: where a LoRA run's
        base model is now, when it moved (its weights must hash as they did at training)."""
        from ..checkpoint import from_pretrained, latest_checkpoint, verify_checkpoint
        from .image import load

        if base_model is None:
            pipeline = load(run_dir, use_ema=use_ema, device=device, precision=precision)
            if not isinstance(pipeline, TextPipeline):
                raise AigcError(f"{run_dir} holds an image model; generate images with aigckit sample")
            return pipeline
        if not Path(base_model).is_dir():
            raise AigcError(f"the base model {base_model} is not a directory; give the folder of the LoRA run's "
                            f"base model")
        checkpoint = latest_checkpoint(Path(run_dir))
        manifest = verify_checkpoint(checkpoint)
        model_fields = manifest.get("model") or {}
        if manifest.get("family") != "lm" or model_fields.get("name") != "hf" or not model_fields.get("lora_r"):
            raise AigcError(f"{run_dir} is not a LoRA run; drop the base model (only a LoRA run names one)")
        model = from_pretrained(checkpoint, use_ema=use_ema, config_overrides={"pretrained": str(base_model)})
        pipeline = cls.from_run(model.to(device), checkpoint)
        pipeline.precision = resolve_precision(precision, device)
        return pipeline

    # ---------------------------------------------------------------- watermark
    def watermark(self, key: int, *, gamma: float = 0.25, delta: float = 2.0, context_width: int = 1) -> Watermark:
        """Key material for this model: green lists over its logits, bound to its tokenizer."""
        return Watermark(key=key, vocab_size=self.model.logits_size, gamma=gamma, delta=delta,
                         context_width=context_width, tokenizer_sha256=tokenizer_sha256(self.tokenizer))

    def check_watermark(self, watermark: Watermark) -> None:
        """Refuse, in one line, key material made for another vocabulary or tokenizer."""
        if watermark.vocab_size != self.model.logits_size:
            raise AigcError(f"the watermark key was made for a vocabulary of {watermark.vocab_size} tokens but this "
                            f"model has {self.model.logits_size}; make a key for it (aigckit watermark key --run RUN)")
        sha = tokenizer_sha256(self.tokenizer)
        if watermark.tokenizer_sha256 is not None and watermark.tokenizer_sha256 != sha:
            raise AigcError("the watermark key was made for another tokenizer than this model's (tokenizer sha256 "
                            f"{watermark.tokenizer_sha256[:12]}…, this one {sha[:12]}…); make a key for this model")

    # ---------------------------------------------------------------- generation
    def stream(self, prompt: str, *, max_new_tokens: int = 200, seed: int | None = None,
               stop: list[str] | None = None, num_beams: int = 1, **options: Any) -> Iterator[str]:
        """Yield the completion piece by piece (one decoded token at a time) until a stop string or the limit.

        num_beams > 1 runs beam search instead of sampling and yields the whole completion at once.
        """
        if getattr(self.model.config, "objective", "causal") == "mlm":
            raise AigcError("this run is a masked-LM encoder: it fills in masked tokens "
                            "(aigckit.models.lm.fill_masks) but does not continue text; train with "
                            "model.objective=causal to generate")
        sampling = {k: options[k] for k in ("temperature", "top_k", "top_p", "repetition_penalty") if k in options}
        check_generation_options(max_new_tokens=max_new_tokens, num_beams=num_beams, **sampling)
        if any(s == "" for s in stop or []):
            raise AigcError("a stop string is empty; give the text to stop at")
        if options.get("watermark") is not None:
            self.check_watermark(options["watermark"])
        ids = self.tokenizer.encode(prompt) or [0]
        check_context(self.model, len(ids), max_new_tokens, whole_sequence=num_beams > 1)
        device = next(self.model.parameters()).device
        prompt_ids = torch.tensor([ids], device=device)
        allowed = self.tokenizer.vocab_size  # a padded embedding's extra ids are no tokens: never choose them
        if num_beams > 1:
            if options.get("watermark") is not None:
                raise AigcError("the watermark biases sampling; use it without beam search (--num-beams 1)")
            text = self.tokenizer.decode(beam_search(self.model, prompt_ids, max_new_tokens=max_new_tokens,
                                                     num_beams=num_beams, allowed_tokens=allowed,
                                                     autocast_dtype=self.precision.autocast_dtype).tolist())
            hits = [text.find(s) for s in stop or [] if s in text]
            yield text[:min(hits)] if hits else text
            return
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        new: list[int] = []
        sent = 0  # characters of the completion already yielded
        text = ""
        for token in generate_tokens(self.model, prompt_ids, max_new_tokens=max_new_tokens, generator=generator,
                                     allowed_tokens=allowed, autocast_dtype=self.precision.autocast_dtype, **options):
            new.append(int(token[0]))
            text = self.tokenizer.decode(new)  # decode the whole tail: BPE pieces can split characters
            hits = [text.find(s) for s in stop or [] if s in text]
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
