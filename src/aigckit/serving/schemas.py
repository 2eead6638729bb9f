"""Request bodies of the HTTP API (OpenAI's shapes, plus aigckit's extensions as extra fields).

Unknown fields are refused (422), never silently ignored: a misspelt option must not look like it worked.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

__all__ = ["ImageGenerationRequest", "CompletionRequest", "ChatMessage", "ChatCompletionRequest", "ImageEditRequest",
           "ImageStylizeRequest", "SpeechRequest", "VideoRequest", "ImageJob", "EditJob", "CompletionJob", "ChatJob", "JobRequest",
           "StreamOptions"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageGenerationRequest(Strict):
    """POST /v1/images/generations: n images from a GAN, VAE or diffusion run."""

    model: str
    prompt: str | None = None  # what a text-conditional model draws; recorded (class models use `labels`)
    n: int = Field(1, ge=1)
    response_format: Literal["b64_json", "url"] = "b64_json"
    size: str | None = Field(None, pattern=r"^\d+x\d+$")  # must be the model's own size ("28x28")
    labels: list[int] | None = None  # one label for all images, or one per image
    sampler: str | None = None
    steps: int | None = Field(None, ge=1)
    guidance: float | None = None
    eta: float | None = None
    seed: int | None = Field(None, ge=0, lt=2**53)  # exact in JSON numbers (JavaScript too)
    user: str | None = None
    watermark: bool = True  # false: no invisible watermark (recorded in the PNG)
    guard: bool = False  # true: withhold near-copies of training images (aigckit eval's memorisation rule)


class ImageEditRequest(Strict):
    """An inpainting request: POST /v1/images/edits takes it as multipart fields (image and mask as files), a job
    of type images.edits as JSON (image and mask as base64)."""

    model: str = Field(min_length=1)  # a served image model, or telea / navier-stokes
    image: str | None = None  # base64 of a PNG, JPEG, ... (jobs only)
    mask: str | None = None  # base64; white where the image is to be repainted (jobs only)
    prompt: str | None = None
    n: int = Field(1, ge=1)
    seed: int | None = Field(None, ge=0, lt=2**53)
    steps: int | None = Field(None, ge=1)
    label: int | None = None
    response_format: Literal["b64_json", "url"] = "b64_json"
    watermark: bool = True  # false: no invisible watermark (recorded in the PNG)


class ImageStylizeRequest(Strict):
    """POST /v1/images/stylize (multipart: the content `image` and, for AdaIN, the `style` image as files): one
    forward pass of a served stylizer."""

    model: str = Field(min_length=1)  # a served fast-style or adain run
    size: int = Field(256, ge=16)  # the result's longer side (the content is resized to it, aspect kept)
    alpha: float = Field(1.0, ge=0, le=1)  # adain: 0 keeps the content's feature statistics, 1 takes the style's
    preserve_color: bool = False  # keep the content's colours, take the style's luminance only
    response_format: Literal["b64_json", "url"] = "b64_json"
    watermark: bool = True  # false: no invisible watermark (recorded in the PNG)


class SpeechRequest(Strict):
    """POST /v1/audio/speech (OpenAI's shape): a number spoken by a class-conditional model trained on spoken
    digits; the body of the answer is the audio file."""

    model: str = Field(min_length=1)  # a served run trained on spoken digits (fsdd, audiofolder)
    input: str = Field(min_length=1, max_length=256)  # the digits to say: "4 0 7 2", "4072"
    voice: str | None = None  # our models speak in one voice, "default"; OpenAI's voices are refused
    response_format: Literal["mp3", "opus", "flac", "wav", "pcm"] = "mp3"  # OpenAI's default; pcm: raw 16-bit
    speed: float | None = Field(None, ge=0.25, le=4.0)  # only 1.0: our words are not time-stretched
    seed: int | None = Field(None, ge=0, lt=2**53)
    iterations: int = Field(64, ge=1, le=512)  # Griffin-Lim iterations per word
    vocoder: Literal["griffin-lim", "learned", "vocos"] = "griffin-lim"  # a trained vocoder of the data, if trained


class VideoRequest(Strict):
    """POST /v1/videos (OpenAI's shape, form fields): one clip of the digits in `prompt` from a video diffusion run,
    answered at once with the video object; poll GET /v1/videos/{id}, then download its content. A form cannot send
    null, so the schema leaves null out of the optional fields: omit them instead."""

    model: str = Field(min_length=1)  # a served video run (moving-digits, moving-mnist)
    prompt: str = Field("", max_length=256)  # the digits the clip shows: "3 7" (as many as the model's clips hold)
    seconds: Annotated[str, Field(max_length=16)] | SkipJsonSchema[None] = None  # only the model's: T at 10 fps
    size: Annotated[str, Field(max_length=32)] | SkipJsonSchema[None] = None  # only the model's frame size ("16x16")
    seed: Annotated[int, Field(ge=0, lt=2**53)] | SkipJsonSchema[None] = None
    sampler: str | SkipJsonSchema[None] = None
    steps: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = None
    guidance: float | SkipJsonSchema[None] = None
    # sampler ddim: each frame starts denoising this many steps after the one before (model.independent_frame_noise)
    frame_lag: Annotated[int, Field(ge=0, le=100)] | SkipJsonSchema[None] = None
    watermark: bool = True  # false: no invisible watermark in the frames (recorded in the MP4's comment)
    # OpenAI's reference image: for a prediction model (model.given_first_frame), the frame every clip continues
    input_reference: UploadFile | SkipJsonSchema[None] = None


class StreamOptions(Strict):
    """OpenAI's stream_options: a last chunk with the usage when include_usage is true."""

    include_usage: bool = False


class SamplingFields(Strict):
    """What completions and chat completions share."""

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)  # 0: greedy decoding
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, lt=2**53)  # exact in JSON numbers (JavaScript too)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # aigckit's extensions (the openai client sends them with extra_body=...)
    top_k: int | None = Field(None, ge=1)
    repetition_penalty: float = Field(1.0, ge=0.01, le=100.0)  # 1: off; > 1 discourages repeats
    watermark: int | None = Field(None, ge=0, lt=2**53)  # the key of the statistical text watermark

    def stop_list(self) -> list[str]:
        """The stop strings as a list."""
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class CompletionRequest(SamplingFields):
    """POST /v1/completions."""

    prompt: str | list[str]


class ChatMessage(Strict):
    """One message of a chat."""

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str
    name: str | None = None


class ChatCompletionRequest(SamplingFields):
    """POST /v1/chat/completions; models without a chat template read the messages joined as plain text."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class ImageJob(Strict):
    """A job of POST /v1/images/generations."""

    type: Literal["images.generations"]
    request: ImageGenerationRequest


class EditJobRequest(ImageEditRequest):
    """An inpainting job: the image and mask as base64."""

    image: str = Field(min_length=1, json_schema_extra={"contentEncoding": "base64"})
    mask: str = Field(min_length=1, json_schema_extra={"contentEncoding": "base64"})


class EditJob(Strict):
    """A job of POST /v1/images/edits."""

    type: Literal["images.edits"]
    request: EditJobRequest


class CompletionJobRequest(CompletionRequest):
    """A completion run as a job: its text streams through GET /v1/jobs/{id}/events, not the answer."""

    stream: Literal[False] = False
    stream_options: None = None


class ChatJobRequest(ChatCompletionRequest):
    """A chat completion run as a job (its text streams through the job's events)."""

    stream: Literal[False] = False
    stream_options: None = None


class CompletionJob(Strict):
    """A job of POST /v1/completions."""

    type: Literal["completions"]
    request: CompletionJobRequest


class ChatJob(Strict):
    """A job of POST /v1/chat/completions."""

    type: Literal["chat.completions"]
    request: ChatJobRequest


# POST /v1/jobs: any generation, answered at once with the job's id; `type` names the route whose body it takes
JobRequest = Annotated[ImageJob | EditJob | CompletionJob | ChatJob, Field(discriminator="type")]
