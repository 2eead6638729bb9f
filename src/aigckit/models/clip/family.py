"""The CLIP family: a contrastive image-caption model trained through the Trainer on captioned images. It generates
nothing; it embeds images and captions for evaluation (CLIP-score, retrieval: aigckit.evaluation.clip_score).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...atomic import atomic_write_text
from ...errors import AigcError
from ...family import FAMILIES, Batch, FamilyBase, StepOutput
from .config import PRESETS, CLIPConfig
from .networks import CLIP, contrastive_loss
from .retrieval import clip_score_of, retrieval_scores

__all__ = ["CLIPFamily", "caption_tensor", "PROBE_PAIRS"]

PROBE_PAIRS = 256  # validation pairs each periodic samples/step-NNNNNN.json scores
NO_SAMPLES = ("clip models embed images and captions; they generate nothing — use aigckit eval or "
              "aigckit.evaluation.clip_score")


def caption_tensor(captions: Tensor | np.ndarray | Sequence[str], caption_bytes: int) -> Tensor:
    """Captions as int64 bytes (N, caption_bytes): strings are encoded; byte rows (N, L) are padded or cut to
    caption_bytes. AigcError for a caption longer than caption_bytes (never cut silently)."""
    from ...data.captions import encode_captions

    if isinstance(captions, str):
        raise AigcError("give a list of captions, not one string; wrap it as [caption]")
    if isinstance(captions, (Tensor, np.ndarray)):
        rows = torch.as_tensor(captions).long()
        if rows.ndim != 2:
            raise AigcError(f"caption bytes must be (N, L), got shape {tuple(rows.shape)}; give what "
                            f"aigckit.data.captions.encode_captions returns, or a list of strings")
    else:
        for text in captions:
            if len(text.encode("utf-8")) > caption_bytes:
                raise AigcError(f"the caption {text[:40]!r}... is {len(text.encode('utf-8'))} bytes; this model "
                                f"reads at most {caption_bytes}: shorten it")
        rows = torch.from_numpy(encode_captions(list(captions), caption_bytes)).long()
    if rows.shape[1] > caption_bytes:
        if rows[:, caption_bytes:].any():
            raise AigcError(f"a caption is longer than the {caption_bytes} bytes this model reads; shorten it or "
                            f"train with model.caption_bytes={rows.shape[1]}")
        rows = rows[:, :caption_bytes]
    return torch.nn.functional.pad(rows, (0, caption_bytes - rows.shape[1]))


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside, the module's own mode restored after (it may be mid-training)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


class CLIPFamily(FamilyBase):
    """Contrastive image-caption models (CLIP's objective), for scoring what text-to-image models draw."""

    name = "clip"
    config_class = CLIPConfig
    presets = PRESETS
    models = {"clip": "contrastive image-caption model (CLIP's objective): a small CNN and a byte-level Transformer "
                      "embed images and captions together; generates nothing, scores (CLIP-score, retrieval)"}
    modality = "embedding"  # sample() returns nothing: embed_images / embed_captions are what it offers
    # periodic "samples" are retrieval scores on validation pairs (write_samples), not images
    capabilities = frozenset({"text_samples"})

    def build(self, config: CLIPConfig) -> CLIP:
        """Both encoders with PyTorch's default initialisation and logit_scale at log(1 / 0.07)."""
        return CLIP(config)

    def optimizers(self, model: CLIP, config: CLIPConfig) -> dict[str, torch.optim.Optimizer]:
        """One Adam over both encoders, their projections and the logit scale."""
        return {"model": torch.optim.Adam(model.parameters(), lr=config.lr)}

    def training_step(self, model: CLIP, batch: Batch, step: int,
                      nets: dict[str, nn.Module]) -> Iterator[StepOutput]:
        """Symmetric InfoNCE over the batch (each process's own batch: no gathering of negatives across processes);
        with config.hard_negatives, each two-item caption with its places swapped is one more caption the images
        must not pick.

        Logs the loss, the logit scale, and the in-batch image -> caption top-1 accuracy (a caption identical to
        the image's own counts as right); with hard negatives, "swap_accuracy": the share of two-item images whose
        own caption scores above its swapped one."""
        if "captions" not in batch:
            raise AigcError("clip models learn from captioned images; use data.name=captioned-mnist or "
                            "captioned-fashion-mnist (or an imagefolder with captions)")
        device = batch["images"].device
        captions = caption_tensor(batch["captions"], model.config.caption_bytes).to(device)
        B = len(captions)
        swapped, owners = self._swapped(captions) if model.config.hard_negatives else ([], [])
        texts = torch.cat([captions, caption_tensor(swapped, model.config.caption_bytes).to(device)]) if swapped \
            else captions
        logits = nets["model"](batch["images"], texts)  # (B, B + swapped captions)
        loss = contrastive_loss(logits)
        with torch.no_grad():
            chosen = captions[logits[:, :B].argmax(1)]  # (B, L): the caption each image picked among the batch's
            logs = {"loss": loss.detach(), "accuracy": (chosen == captions).all(1).float().mean(),
                    "logit_scale": model.scale().detach()}
            if owners:
                own = logits[owners, owners]
                logs["swap_accuracy"] = (own > logits[owners, B + torch.arange(len(owners))]).float().mean()
        yield StepOutput("model", loss, logs)

    @staticmethod
    def _swapped(captions: Tensor) -> tuple[list[str], list[int]]:
        """The batch's two-item captions with their places swapped, and the rows they come from."""
        from ...data.captions import decode_captions, swap_places

        pairs = [(swap_places(text), row) for row, text in enumerate(decode_captions(captions))]
        kept = [(text, row) for text, row in pairs if text is not None]
        return [text for text, _ in kept], [row for _, row in kept]

    def sample(self, model: CLIP, n: int, *, labels: Tensor | None = None,
               generator: torch.Generator | None = None, **options: Any) -> Tensor:
        """CLIP models generate nothing: raises AigcError saying what to use instead."""
        raise AigcError(NO_SAMPLES)

    def embed_images(self, model: CLIP, images: Tensor, *, batch_size: int = 256) -> Tensor:
        """Unit-norm embeddings (N, embed_dim), float32 on the CPU, of images (N, C, S, S) in [-1, 1] at the
        model's channels and size; eval mode, no gradients, `batch_size` at a time."""
        c = model.config
        if images.ndim != 4 or tuple(images.shape[1:]) != (c.channels, c.image_size, c.image_size):
            raise AigcError(f"images are {tuple(images.shape)}; this clip model reads (N, {c.channels}, "
                            f"{c.image_size}, {c.image_size}): give images of that size, or train a clip model at "
                            f"data.image_size={images.shape[-1] if images.ndim == 4 else '...'}")
        if images.numel() and (images.min() < -1.001 or images.max() > 1.001):
            raise AigcError(f"images range over [{float(images.min()):.3g}, {float(images.max()):.3g}]; give them "
                            f"in [-1, 1] (pixels / 127.5 - 1)")
        device = next(model.parameters()).device
        with _evaluating(model):
            chunks = [model.encode_images(chunk.to(device, torch.float32)).cpu() for chunk in images.split(batch_size)]
        return torch.cat(chunks) if chunks else torch.zeros(0, c.embed_dim)

    def embed_captions(self, model: CLIP, captions: Tensor | np.ndarray | Sequence[str], *,
                       batch_size: int = 256) -> Tensor:
        """Unit-norm embeddings (N, embed_dim), float32 on the CPU, of N captions: strings, or their bytes (N, L)
        as batches carry them; eval mode, no gradients, `batch_size` at a time."""
        rows = caption_tensor(captions, model.config.caption_bytes)
        device = next(model.parameters()).device
        with _evaluating(model):
            chunks = [model.encode_captions(chunk.to(device)).cpu() for chunk in rows.split(batch_size)]
        return torch.cat(chunks) if chunks else torch.zeros(0, model.config.embed_dim)

    def write_samples(self, model: CLIP, run_dir: Path, step: int, generator: torch.Generator) -> Path:
        """samples/step-NNNNNN.json: retrieval accuracy and CLIP-score (true and shuffled captions) on the first
        PROBE_PAIRS validation pairs of the run's data; `generator` is unused (the probe is fixed)."""
        from ...config import config_from_dict, parse_yaml
        from ...data import load_dataset

        run = config_from_dict(parse_yaml((Path(run_dir) / "config.yaml").read_text(encoding="utf-8")))
        val = load_dataset(run.data, "val")
        path = Path(run_dir) / "samples" / f"step-{step:06d}.json"
        report: dict[str, Any] = {"step": step, "data": run.data.name, "split": "val"}
        if len(val) < 2:
            report["note"] = "fewer than 2 validation pairs (data.val_fraction): nothing to score"
        else:
            batch = val.batch(torch.arange(min(PROBE_PAIRS, len(val))))
            images = self.embed_images(model, batch["images"])
            texts = self.embed_captions(model, batch["captions"])
            report.update(retrieval_scores(images, texts, batch["captions"]))
            report["clip_score"] = clip_score_of(images, texts)
            report["clip_score_shuffled"] = clip_score_of(images, texts.roll(1, 0))  # each image, the next's caption
            report["logit_scale"] = float(model.scale().detach())
        atomic_write_text(path, json.dumps(report, indent=2) + "\n")
        return path


FAMILIES.register("clip")(CLIPFamily())
