"""The served models: each run directory (or transformers model directory) is one model, its id the folder name.

Requests name a model by id only; an id resolves to one of the folders given at start-up, never to a path."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import checkpoint_sha256
from ..errors import AigcError
from ..pipelines import ImagePipeline, TextPipeline, VideoPipeline, load
from ..pipelines.speech import audio_spec, trained_on_audio

__all__ = ["ServedModel", "ModelCatalog", "best_device", "VIDEO_FPS", "clip_seconds", "frame_size"]

VIDEO_FPS = 10  # frames per second of the served MP4s, as `aigckit sample` writes clips


def clip_seconds(pipeline: VideoPipeline) -> str:
    """A clip's length as OpenAI's `seconds` field gives it: T frames at VIDEO_FPS ("0.8")."""
    return f"{pipeline.frames / VIDEO_FPS:g}"


def frame_size(pipeline: ImagePipeline) -> str:
    """The model's frame (or image) size as OpenAI's `size` field gives it, width x height ("16x16")."""
    return f"{pipeline.config.image_size}x{pipeline.config.image_size}"


def best_device(requested: str = "auto") -> torch.device:
    """CUDA when present (for "auto"), else the CPU; an explicit device is taken as given."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


@dataclass
class ServedModel:
    """One model the server offers; the pipeline is loaded once, at start-up or on first use (lazy)."""

    id: str
    path: Path
    device: torch.device
    precision: str
    created: int = field(default_factory=lambda: int(time.time()))
    pipeline: ImagePipeline | VideoPipeline | TextPipeline | None = None
    sha256: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def loaded(self) -> bool:
        """Whether the weights are in memory."""
        return self.pipeline is not None

    def get(self) -> ImagePipeline | TextPipeline:
        """The pipeline, loading it the first time (once, even when several threads ask at the same moment)."""
        with self._lock:
            if self.pipeline is None:
                pipeline = load(self.path, device=self.device, precision=self.precision)
                self.sha256 = checkpoint_sha256(Path(pipeline.checkpoint))
                self.pipeline = pipeline
        return self.pipeline

    @property
    def kind(self) -> str:
        """'image', 'video' or 'text'."""
        pipeline = self.get()
        if isinstance(pipeline, TextPipeline):
            return "text"
        return "video" if isinstance(pipeline, VideoPipeline) else "image"

    def describe(self) -> dict[str, Any]:
        """What /v1/models and the web page say of this model (loads it if lazy)."""
        pipeline = self.get()
        info: dict[str, Any] = {"kind": self.kind, "checkpoint_sha256": self.sha256,
                                "precision": pipeline.precision.name}
        if isinstance(pipeline, TextPipeline):
            config = getattr(pipeline.model, "config", None)
            info.update(family="lm", model=getattr(config, "name", "transformers"),
                        context_size=pipeline.model.context_size, vocab_size=pipeline.tokenizer.vocab_size)
            return info
        config = pipeline.config
        info.update(family=pipeline.family.name, model=config.name, image_size=config.image_size,
                    channels=config.channels, num_classes=pipeline.num_classes,
                    options=pipeline.family.describe_sample_options(pipeline.model),
                    inpaint_method=pipeline.family.inpaint_method)
        if isinstance(pipeline, VideoPipeline):  # POST /v1/videos makes one clip of these digits, frames and size
            info.update(digits_per_clip=pipeline.labels_per_video, frames=pipeline.frames, fps=VIDEO_FPS,
                        seconds=clip_seconds(pipeline), size=frame_size(pipeline),
                        continues_first_frame=bool(config.given_first_frame))  # takes input_reference
        if trained_on_audio(self.path):
            info["speech"] = {"rate": audio_spec(self.path).rate}  # POST /v1/audio/speech speaks with it
        return info


class ModelCatalog:
    """Model id -> ServedModel for the folders given at start-up."""

    def __init__(self, paths: list[Path], *, device: str = "auto", precision: str = "auto") -> None:
        self.models: dict[str, ServedModel] = {}
        chosen = best_device(device)
        for path in paths:
            path = Path(path)
            if not path.is_dir():
                raise AigcError(f"{path} is not a directory; give run directories made by aigckit train "
                                f"(or local transformers model folders)")
            model_id = path.resolve().name
            if model_id in self.models:
                raise AigcError(f"two models would be called {model_id!r} ({self.models[model_id].path} and {path}); "
                                f"model ids are folder names, so rename or copy one of the folders")
            self.models[model_id] = ServedModel(model_id, path, chosen, precision)

    def __iter__(self):
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)

    def get(self, model_id: str | None) -> ServedModel:
        """The served model called `model_id`; KeyError with the known ids otherwise."""
        if model_id not in self.models:
            raise KeyError(f"no model {model_id!r} on this server; known: {', '.join(self.models) or 'none'}")
        return self.models[model_id]

    def load_all(self) -> None:
        """Load every model now (start-up without --lazy)."""
        for model in self.models.values():
            model.get()
