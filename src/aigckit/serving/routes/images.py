"""POST /v1/images/generations and /v1/images/edits (OpenAI's shapes), POST /v1/images/stylize (aigckit's,
multipart like edits), GET /v1/files/{sha256}.png (and .mp4: the videos)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse

from ..deps import StateDep, read_upload
from ..errors import APIError
from ..security import KeyName
from ..submit import await_job, prepare_edit, prepare_stylize, preload, submit_edit, submit_images, submit_stylize
from ..schemas import ImageEditRequest, ImageGenerationRequest, ImageStylizeRequest

router = APIRouter()


@router.post("/v1/images/generations")
async def generate_images(body: ImageGenerationRequest, request: Request, state: StateDep, key: KeyName) -> dict:
    """n images from a GAN, VAE or diffusion model; extensions: labels, sampler, steps, guidance, eta, seed."""
    await preload(state, body.model)
    return await await_job(request, submit_images(state, body, key))


@router.post("/v1/images/edits")
async def edit_images(
    request: Request, state: StateDep, key: KeyName,
    image: Annotated[UploadFile, File(description="the image to repair")],
    mask: Annotated[UploadFile, File(description="white where the image is to be repainted")],
    model: Annotated[str, Form(min_length=1, description="a served image model, or telea / navier-stokes")],
    prompt: Annotated[str | None, Form()] = None,
    n: Annotated[int, Form(ge=1)] = 1,
    seed: Annotated[int | None, Form(ge=0, lt=2**53)] = None,
    steps: Annotated[int | None, Form(ge=1)] = None,
    label: Annotated[int | None, Form()] = None,
    response_format: Annotated[Literal["b64_json", "url"], Form()] = "b64_json",
    watermark: Annotated[bool, Form(description="false: no invisible watermark (recorded in the PNG)")] = True,
) -> dict:
    """Inpaint the white part of `mask` with the model's own method (RePaint, VAE latent search) or OpenCV's."""
    limit = state.settings.limits.max_upload_bytes
    edit = ImageEditRequest(model=model, prompt=prompt, n=n, seed=seed, steps=steps, label=label,
                            response_format=response_format, watermark=watermark)
    image_bytes, mask_bytes = await read_upload(image, "image", limit), await read_upload(mask, "mask", limit)
    work = await prepare_edit(state, edit, lambda: image_bytes, lambda: mask_bytes)
    return await await_job(request, submit_edit(state, model, work, key))


@router.post("/v1/images/stylize")
async def stylize_image(
    request: Request, state: StateDep, key: KeyName,
    image: Annotated[UploadFile, File(description="the content image")],
    model: Annotated[str, Form(min_length=1, description="a served fast-style or adain run")],
    style: Annotated[UploadFile | None, File(description="adain: the style image")] = None,
    size: Annotated[int, Form(ge=16, description="the result's longer side in pixels")] = 256,
    alpha: Annotated[float, Form(ge=0, le=1, description="adain: 0 the content's statistics, 1 the style's")] = 1.0,
    preserve_color: Annotated[bool, Form(description="keep the content's colours")] = False,
    response_format: Annotated[Literal["b64_json", "url"], Form()] = "b64_json",
    watermark: Annotated[bool, Form(description="false: no invisible watermark (recorded in the PNG)")] = True,
) -> dict:
    """The content image in a style, in one pass of a trained stylizer (fast-style: its own style; adain: `style`)."""
    limit = state.settings.limits.max_upload_bytes
    body = ImageStylizeRequest(model=model, size=size, alpha=alpha, preserve_color=preserve_color,
                               response_format=response_format, watermark=watermark)
    content_bytes = await read_upload(image, "image", limit)
    style_bytes = await read_upload(style, "style", limit) if style is not None else None
    work = await prepare_stylize(state, body, lambda: content_bytes, lambda: style_bytes)
    return await await_job(request, submit_stylize(state, model, work, key))


@router.get("/v1/files/{name}")
def get_file(name: str, state: StateDep, key: KeyName) -> FileResponse:
    """An image or a video the server made, by its sha256 (`<sha256>.png`, `<sha256>.mp4`)."""
    stores = {".png": (state.images, "image/png"), ".mp4": (state.videos, "video/mp4")}
    sha, suffix = name[:-4], name[-4:]
    if suffix not in stores or not stores[suffix][0].exists(sha):  # exists() takes only a sha256, never a path
        raise APIError(404, f"no file {name} on this server", "not_found_error")
    store, media_type = stores[suffix]
    return FileResponse(store.path(sha), media_type=media_type)
