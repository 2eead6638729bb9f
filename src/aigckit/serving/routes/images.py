"""POST /v1/images/generations and /v1/images/edits (OpenAI's shapes), GET /v1/files/{sha256}.png."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse

from ...pipelines.inpaint import CLASSICAL_METHODS
from ..deps import StateDep
from ..errors import APIError
from ..image_jobs import EditWork, draw_seeds, open_upload
from ..security import KeyName
from ..submit import await_job, preload, submit_edit, submit_images
from ..schemas import ImageGenerationRequest

router = APIRouter()


@router.post("/v1/images/generations")
async def generate_images(body: ImageGenerationRequest, request: Request, state: StateDep, key: KeyName) -> dict:
    """n images from a GAN, VAE or diffusion model; extensions: labels, sampler, steps, guidance, eta, seed."""
    await preload(state, body.model)
    return await await_job(request, submit_images(state, body, key))


async def _read(upload: UploadFile, what: str, limit: int) -> bytes:
    raw = await upload.read(limit + 1)
    if len(raw) > limit:
        raise APIError(413, f"the {what} is larger than this server's limit of {limit} bytes")
    return raw


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
) -> dict:
    """Inpaint the white part of `mask` with the model's own method (RePaint, VAE latent search) or OpenCV's."""
    limits = state.settings.limits
    if n > limits.max_n:
        raise APIError(422, f"n is {n}; this server makes at most {limits.max_n} images per request")
    if steps is not None and steps > limits.max_steps:
        raise APIError(422, f"steps is {steps}; this server runs at most {limits.max_steps} steps")
    picture = open_upload(await _read(image, "image", limits.max_upload_bytes), "image", limits.max_image_side)
    hole = open_upload(await _read(mask, "mask", limits.max_upload_bytes), "mask", limits.max_image_side)
    options = {"steps": steps} if steps is not None else {}
    if model in CLASSICAL_METHODS:
        if options or label is not None:
            raise APIError(422, f"{model} uses no trained model, so steps and label cannot apply; drop them")
        work = EditWork(picture, hole, model, draw_seeds(seed, n), None, response_format)
    else:
        await preload(state, model)
        served = state.model(model, "image")
        if not served.get().family.supports("inpaint"):
            raise APIError(422, f"{model} cannot inpaint ({served.get().family.name} models have no inpainting "
                                f"method); use a diffusion or VAE model, or telea / navier-stokes")
        if "steps" in options and "steps" not in served.get().family.inpaint_options:
            raise APIError(422, f"steps does not apply to {model}'s inpainting; drop it")
        work = EditWork(picture, hole, None, draw_seeds(seed, n), label, response_format, options)
    return await await_job(request, submit_edit(state, model, work, key))


@router.get("/v1/files/{name}")
def get_file(name: str, state: StateDep, key: KeyName) -> FileResponse:
    """An image the server made, by its sha256 (`<sha256>.png`)."""
    sha = name.removesuffix(".png")
    if not name.endswith(".png") or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha) or not state.images.exists(sha):
        raise APIError(404, f"no image {name} on this server", "not_found_error")
    return FileResponse(state.images.path(sha), media_type="image/png")
