"""The diffusion family: learn to remove noise, generate by denoising from pure noise.

Training (Ho et al. 2020, Algorithm 1): x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps for a random t, and the UNet
learns to predict eps (or v, or x0) from (x_t, t). Sampling runs any sampler on the same network.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...checkpoint import from_pretrained, latest_checkpoint
from ...errors import AigcError
from ...family import FAMILIES, Batch, FamilyBase, StepOutput
from ...layers import ExampleNoise, TextEncoder, check_class_labels, randn
from .autoencoder import Autoencoder
from .config import LATENT_FACTOR, PRESETS, DiffusionConfig
from .likelihood import variational_bound
from .repaint import repaint
from .samplers import SAMPLERS, DDIMSampler
from .samplers.staggered import ddim_move, staggered_indices
from .schedules import alphas_cumprod, edm_scalings, edm_target, lognormal_timesteps, min_snr_weights, training_target
from .unet import UNet
from .video_unet import VideoUNet

__all__ = ["DiffusionModel", "DiffusionFamily", "make_sampler", "check_guidance", "check_frame_lag", "prompt_bytes",
           "pretrained_text_encoder", "copy_initial_weights"]

AUTOENCODER_FRAME_STRIDE = 2  # latent video diffusion: the autoencoder trains on every second frame of a clip


def _newest_model(run_dir: str, option: str, advice: str) -> tuple[nn.Module, Path, Path]:
    """The model of the newest checkpoint of the run named by model.`option`, that run's folder and the checkpoint;
    a folder that is no run is refused with `advice`."""
    run = Path(run_dir)
    if not run.is_dir():
        raise AigcError(f"model.{option}={run} is not a run directory; {advice}, or set it to null")
    checkpoint = latest_checkpoint(run)
    return from_pretrained(checkpoint), run, checkpoint


def pretrained_text_encoder(config: DiffusionConfig) -> nn.Module:
    """The text encoder of the clip run config.text_encoder_run (its newest checkpoint), checked against the
    text_* sizes of config."""
    clip, run, _ = _newest_model(config.text_encoder_run, "text_encoder_run",
                                 "train one with configs/clip-captioned-mnist.yaml and give its folder")
    encoder = getattr(clip, "text_encoder", None)
    if not isinstance(encoder, TextEncoder):
        raise AigcError(f"{run} holds no caption encoder (a {type(clip).__name__}); give a clip run's folder")
    theirs = {"text_width": encoder.embed.embedding_dim, "text_layers": len(encoder.layers),
              "text_heads": encoder.layers[0].self_attn.num_heads, "text_buckets": encoder.buckets}
    wrong = {key: value for key, value in theirs.items() if getattr(config, key) != value}
    if wrong:
        raise AigcError(f"the text encoder of {run} has {', '.join(f'{k}={v}' for k, v in theirs.items())}; set "
                        + " ".join(f"model.{k}={v}" for k, v in wrong.items()))
    return encoder


def copy_initial_weights(model: DiffusionModel, run_dir: str) -> None:
    """Copy into model's UNet every weight of the same name and shape from the newest checkpoint of the
    diffusion run `run_dir` (an image UNet's weights go to a video UNet's image layers), and a latent run's
    autoencoder whole, as trained (its UNet learnt that autoencoder's latents); refuse a run whose weights share a
    name but not a shape, or share nothing, and a run in pixels for a latent model or the other way round."""
    source, run, checkpoint = _newest_model(run_dir, "init_from", "give a trained diffusion run's folder")
    if not isinstance(source, DiffusionModel):
        raise AigcError(f"{run} holds a {type(source).__name__}, not a diffusion model; give a diffusion run's folder")
    _copy_autoencoder(model, source, run)
    theirs = source.unet.state_dict()
    if isinstance(model.unet, VideoUNet) and not isinstance(source.unet, VideoUNet):
        theirs = {f"spatial.{name}": weight for name, weight in theirs.items()}
    ours = model.unet.state_dict()
    shared = [name for name in ours if name in theirs]
    if not shared:
        raise AigcError(f"no weight of {run} has a name this network has; give a run of the same preset's network "
                        f"(for a video model: a one-frame run, data.name moving-mnist-frames)")
    wrong = [name for name in shared if ours[name].shape != theirs[name].shape]
    if wrong:
        name = wrong[0]
        raise AigcError(f"{run} was built with other sizes ({name}: {tuple(theirs[name].shape)} there, "
                        f"{tuple(ours[name].shape)} here); give it the same model sizes, or set model.init_from null")
    model.unet.load_state_dict({name: theirs[name] for name in shared}, strict=False)
    print(f"model.init_from: {len(shared)} of {len(ours)} weights from {checkpoint}", file=sys.stderr)


def _copy_autoencoder(model: DiffusionModel, source: DiffusionModel, run: Path) -> None:
    """A latent model started from a latent run takes that run's trained autoencoder (model.autoencoder_steps 0);
    AigcError for anything else that mixes pixels and latents, or two autoencoders."""
    config, theirs = model.config, source.config
    if (model.autoencoder is None) != (source.autoencoder is None):
        what = "latents" if source.autoencoder is not None else "pixels"
        raise AigcError(f"{run} denoises {what} and this model does not, so its weights would see other inputs; "
                        f"give a run with model.latent_channels={config.latent_channels or 'null'}")
    if model.autoencoder is None:
        return
    if config.autoencoder_steps:
        raise AigcError(f"{run} is a latent run, whose weights learnt its own autoencoder's latents; set "
                        f"model.autoencoder_steps=0 to take that autoencoder")
    sizes = ("channels", "latent_channels", "autoencoder_width")
    if any(getattr(config, key) != getattr(theirs, key) for key in sizes):
        raise AigcError(f"the autoencoder of {run} has " + ", ".join(f"{k}={getattr(theirs, k)}" for k in sizes)
                        + "; set " + " ".join(f"model.{k}={getattr(theirs, k)}" for k in sizes[1:]))
    model.autoencoder.load_state_dict(source.autoencoder.state_dict())


class DiffusionModel(nn.Module):
    """The UNet (a space-time VideoUNet when config.frames is set) plus its noise schedule (rebuilt from the config,
    so not stored in the weights); for latent video diffusion (config.latent_channels) the autoencoder whose latents
    the UNet denoises."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.config = config
        self.autoencoder = (Autoencoder(config.channels, config.latent_channels, config.autoencoder_width)
                            if config.latent_channels is not None else None)
        unet_config = config.unet_config()
        self.unet = VideoUNet(unet_config) if config.frames is not None else UNet(unet_config)
        self.register_buffer("alphas_cumprod", alphas_cumprod(config.schedule, config.num_train_steps),
                             persistent=False)
        if config.text_encoder_run is not None:
            self.unet.text.requires_grad_(False)  # pretrained elsewhere (build copies it in), never trained here

    @property
    def output_prediction(self) -> str:
        """What guided_output returns, as samplers name it: the config's prediction, or x0 for an EDM network."""
        return "x0" if self.config.prediction == "edm" else self.config.prediction

    def denoise(self, x_t: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        """One network evaluation in the output_prediction's terms (EDM: the preconditioned x0 estimate)."""
        if self.config.prediction != "edm":
            return self.unet(x_t, t, labels)
        a = self.alphas_cumprod[t].view(-1, *[1] * (x_t.ndim - 1))  # (B, 1, 1, 1), or (B, 1, 1, 1, 1) for clips
        c_in, c_skip, c_out = edm_scalings(a, self.config.sigma_data)
        return c_skip * x_t + c_out * self.unet(c_in * x_t, t, labels)

    @property
    def conditioned(self) -> bool:
        """Whether the network takes a condition: class labels or captions."""
        return self.config.conditional or self.config.text_conditional

    @property
    def is_video(self) -> bool:
        """Whether the model generates clips (B, T, C, H, W) rather than images."""
        return self.config.frames is not None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample: (C, H, W), or (T, C, H, W) for a video model."""
        config = self.config
        frame = (config.channels, config.image_size, config.image_size)
        return (config.frames, *frame) if self.is_video else frame

    @property
    def denoised_shape(self) -> tuple[int, ...]:
        """The shape of what the UNet denoises for one sample: sample_shape, or its latents'."""
        unet = self.config.unet_config()
        frame = (unet.channels, unet.image_size, unet.image_size)
        return (unet.frames, *frame) if self.is_video else frame

    def to_latents(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) or clips (B, T, C, H, W) -> what the UNet denoises: the autoencoder's normalised
        latents, frame by frame (x itself for pixel diffusion)."""
        if self.autoencoder is None:
            return x
        z = self.autoencoder.encode(x.flatten(0, x.ndim - 4))
        return z.view(*x.shape[:-3], *z.shape[1:])

    def from_latents(self, z: Tensor) -> Tensor:
        """The inverse of to_latents: the autoencoder's decoding, frame by frame (z itself for pixel diffusion)."""
        if self.autoencoder is None:
            return z
        x = self.autoencoder.decode(z.flatten(0, z.ndim - 4))
        return x.view(*z.shape[:-3], *x.shape[1:])

    def null_labels(self, n: int, device: torch.device) -> Tensor | None:
        """The "no condition" for n images: the null class, or the empty caption (None for an unconditional
        model); for a video model, the null class for each of a clip's K labels, (n, K)."""
        if self.config.text_conditional:
            return torch.zeros((n, self.config.caption_bytes), dtype=torch.long, device=device)
        if self.config.conditional and self.is_video:
            return torch.full((n, self.config.labels_per_video), self.config.num_classes, device=device)
        return torch.full((n,), self.config.num_classes, device=device) if self.config.conditional else None

    def guided_output(self, x_t: Tensor, t: Tensor, labels: Tensor | None, guidance: float = 1.0) -> Tensor:
        """The network output with classifier-free guidance, https://arxiv.org/abs/2207.12598:

        out = out(x_t, none) + guidance * (out(x_t, label) - out(x_t, none)); guidance 1 is the conditional
        model, 0 the unconditional one. Outputs are affine in eps, so this holds for eps, v, x0 and EDM alike.
        `labels` are class ids (B,), caption bytes (B, L) (data.captions), or a clip's class ids (B, K) (video).
        """
        if labels is None or not self.conditioned:
            return self.denoise(x_t, t, self.null_labels(x_t.shape[0], x_t.device))
        if guidance == 1.0:
            return self.denoise(x_t, t, labels)
        null = self.null_labels(x_t.shape[0], x_t.device)
        both = self.denoise(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([labels, null]))
        conditional, unconditional = both.chunk(2)
        return unconditional + guidance * (conditional - unconditional)


def prompt_bytes(model: DiffusionModel, n: int, prompt: str | Sequence[str] | None) -> Tensor:
    """(n, caption_bytes) caption bytes for a text-conditional model: `prompt` (one for all, or n), else the
    model's prompts in turn; AigcError for a wrong count or a caption longer than the model reads."""
    from ...data.captions import encode_captions

    config = model.config
    prompts = [prompt] if isinstance(prompt, str) else list(prompt or config.prompts or [""])
    if prompt is not None and len(prompts) not in (1, n):
        raise AigcError(f"got {len(prompts)} prompts for {n} images; give one prompt or exactly n")
    for text in prompts:
        if len(text.encode("utf-8")) > config.caption_bytes:
            raise AigcError(f"the prompt {text[:40]!r}... is {len(text.encode('utf-8'))} bytes; this model reads "
                            f"at most {config.caption_bytes}: shorten it")
    # without a prompt, each of the model's prompts fills a run of n / len(prompts) images: a row of a grid
    per = 1 if prompt is not None else max(1, n // len(prompts))
    prompts = [prompts[(i // per) % len(prompts)] for i in range(n)]
    return torch.from_numpy(encode_captions(prompts, config.caption_bytes)).long()


def make_sampler(model: DiffusionModel, name: str, *, eta: float | None = None):
    """A sampler by name ('ddpm', 'ddim', 'dpm-solver++') over the model's schedule; eta only for 'ddim'.

    Pixels lie in [-1, 1], so the samplers clip their estimate of x0 there; a latent model's normalised latents
    (unit standard deviation) do not, and clipping them would cut a third of every latent's values."""
    if name not in SAMPLERS:
        raise AigcError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    a = model.alphas_cumprod.cpu()
    options = {"prediction": model.output_prediction, "clip_sample": model.autoencoder is None}
    if name == "ddim":
        return SAMPLERS[name](a, eta=0.0 if eta is None else eta, **options)
    if eta is not None:
        raise AigcError(f"eta applies to the ddim sampler only, not {name}; choose sampler ddim or drop eta")
    return SAMPLERS[name](a, **options)


def check_guidance(model: DiffusionModel, guidance: float | None) -> float:
    """The classifier-free guidance scale to use: the model config's when not given; refused for an unconditional
    model."""
    if guidance is None:
        return model.config.guidance
    if not math.isfinite(guidance) or guidance < 0:
        raise AigcError(f"guidance must be a number >= 0 (0: unconditional, 1: conditional, > 1: stronger), "
                        f"got {guidance}")
    if not model.conditioned:
        raise AigcError("guidance needs a conditional model (trained with model.conditional=true or "
                        "model.text_conditional=true); this one is unconditional, so drop guidance")
    return guidance


class DiffusionFamily(FamilyBase):
    """Denoising diffusion with a UNet; DDPM, DDIM and DPM-Solver++ samplers; classifier-free guidance."""

    name = "diffusion"
    config_class = DiffusionConfig
    presets = PRESETS
    models = {"diffusion": "denoising diffusion UNet (DDPM/DDIM/DPM-Solver++ sampling, classifier-free guidance)"}
    capabilities = frozenset({"inpaint", "log_likelihood"})
    sample_options = frozenset({"sampler", "steps", "guidance", "eta", "prompt", "trajectory", "progress",
                                "first_frame", "frame_lag"})
    inpaint_method = "repaint"  # the name `aigckit inpaint --method` knows this family's inpainting by
    inpaint_options = frozenset({"steps", "jump_length", "resamplings", "guidance"})  # keywords of inpaint()

    def check_sample_options(self, options: dict[str, Any], model_name: str,
                             model: DiffusionModel | None = None) -> None:
        """The base check, and given the model, a frame lag it cannot sample with (before any work is queued)."""
        super().check_sample_options(options, model_name, model)
        if model is not None and options.get("frame_lag"):
            check_frame_lag(model, options["frame_lag"], options.get("sampler") or model.config.sampler,
                            options.get("eta"))

    def describe_sample_options(self, model: DiffusionModel) -> dict[str, dict[str, Any]]:
        """Sampler, steps, eta, (conditional models) guidance and (video) frame_lag, with the model's defaults."""
        config = model.config
        options: dict[str, dict[str, Any]] = {
            "sampler": {"type": "choice", "choices": list(SAMPLERS), "default": config.sampler},
            "steps": {"type": "int", "min": 1, "max": config.num_train_steps, "default": config.sampling_steps},
            "eta": {"type": "float", "min": 0.0, "max": 1.0, "default": 0.0, "only_for": "ddim"},
        }
        if model.conditioned:
            options["guidance"] = {"type": "float", "min": 0.0, "max": 20.0, "default": config.guidance}
        if config.text_conditional:
            options["prompt"] = {"type": "text", "default": (config.prompts or [""])[0]}
        if model.is_video:
            options["frame_lag"] = {"type": "int", "min": 0, "max": config.num_train_steps,
                                    "default": config.frame_lag, "only_for": "ddim"}
        return options

    def build(self, config: DiffusionConfig) -> DiffusionModel:
        """The UNet (residual branches and output start at zero) and its schedule; with text_encoder_run, the
        clip run's text encoder copied in (frozen); with init_from, that run's weights copied in."""
        if config.given_first_frame and config.frames is None:
            raise AigcError("model.given_first_frame is for video models (it continues a clip's first frame); set it "
                            "to 0 for image data")
        if config.independent_frame_noise and config.frames is None:
            raise AigcError("model.independent_frame_noise is for video models (it noises a clip's frames to levels "
                            "of their own); set it to 0 for image data")
        model = DiffusionModel(config)
        if config.text_encoder_run is not None:
            model.unet.text.load_state_dict(pretrained_text_encoder(config).state_dict())
        if config.init_from is not None:
            copy_initial_weights(model, config.init_from)
        return model

    def build_from_checkpoint(self, config: DiffusionConfig, directory: Path, manifest: dict[str, Any]) -> DiffusionModel:
        """The networks a checkpoint loads into: its text encoder is in its weights, so the clip run is not read."""
        return DiffusionModel(config)

    def optimizers(self, model: DiffusionModel, config: DiffusionConfig) -> dict[str, torch.optim.Optimizer]:
        """AdamW over the UNet's trained weights (a pretrained text encoder stays frozen); for latent video diffusion
        a second AdamW over the autoencoder."""
        trained = [p for p in model.unet.parameters() if p.requires_grad]
        optimizers = {"model": torch.optim.AdamW(trained, lr=config.lr, weight_decay=0.0)}
        if model.autoencoder is not None:
            optimizers["autoencoder"] = torch.optim.AdamW(model.autoencoder.parameters(), lr=config.lr,
                                                          weight_decay=0.0)
        return optimizers

    def networks(self, model: DiffusionModel) -> dict[str, nn.Module]:
        """The UNet (and the autoencoder) is what the optimizers train (the schedule's buffers stay fixed)."""
        return {"model": model.unet, **({"autoencoder": model.autoencoder} if model.autoencoder is not None else {})}

    def training_step(self, model: DiffusionModel, batch: Batch, step: int,
                      nets: dict[str, nn.Module]) -> Iterator[StepOutput]:
        """MSE between the UNet's output and its target at a drawn timestep (uniform, or log-normal in sigma).

        Latent video diffusion: the first autoencoder_steps steps train the autoencoder alone (on every
        AUTOENCODER_FRAME_STRIDE-th frame of the clips); after them it is frozen and the UNet learns its latents."""
        config = model.config
        key = "videos" if model.is_video else "images"
        if key not in batch:
            raise AigcError(f"this diffusion model (model.frames={config.frames}) trains on {key}, and the data "
                            f"gives {', '.join(k for k in ('images', 'videos', 'tokens') if k in batch)}; leave "
                            f"model.frames null to take it from the data")
        x0 = batch[key]  # (B, C, H, W), or (B, T, C, H, W) clips
        B = x0.shape[0]
        noise = ExampleNoise(batch["seeds"], x0.device)
        if model.autoencoder is not None:
            if step < config.autoencoder_steps:
                frames = x0[:, ::AUTOENCODER_FRAME_STRIDE]  # (B, F, C, H, W)
                latent = (frames.shape[1], config.latent_channels, *[side // LATENT_FACTOR for side in x0.shape[-2:]])
                loss, l1 = nets["autoencoder"](frames.flatten(0, 1), noise.randn(*latent).flatten(0, 1))
                yield StepOutput("autoencoder", loss, {"autoencoder_l1": l1})
                return
            model.autoencoder.requires_grad_(False)  # frozen from here on (the EMA copies a frozen weight)
            with torch.no_grad():
                x0 = model.to_latents(x0)
        t = _timesteps(model, noise)  # (B,)
        if config.independent_frame_noise:  # these clips' frames each at a level of their own: t (B, T)
            own = noise.rand() < config.independent_frame_noise
            t = torch.where(own[:, None], _timesteps(model, noise, x0.shape[1]), t[:, None])
        eps = noise.randn(*x0.shape[1:]).to(x0.dtype)
        a = model.alphas_cumprod[t].view(*t.shape, *[1] * (x0.ndim - t.ndim))
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps  # q(x_t | x0) in closed form
        if config.conditional:
            drop = noise.rand() < config.label_dropout
            # a clip's K labels (B, K) are dropped together: "none" is the null class for all of them
            labels = torch.where(drop.view(B, *[1] * (batch["labels"].ndim - 1)), config.num_classes, batch["labels"])
        elif config.text_conditional:
            if "captions" not in batch:
                raise AigcError("model.text_conditional needs captioned data (captioned-mnist, captioned-fashion-"
                                "mnist, or an imagefolder with captions); change data.name or set it to false")
            drop = noise.rand() < config.label_dropout
            labels = torch.where(drop[:, None], 0, batch["captions"].long())  # the empty caption: "none"
        else:
            labels = model.null_labels(B, x0.device)
        given = None  # video prediction: (B, T) True where a frame is given clean, at t = 0, and not scored
        if model.is_video and config.given_first_frame:
            given = torch.zeros(x0.shape[:2], dtype=torch.bool, device=x0.device)
            given[:, 0] = noise.rand() < config.given_first_frame
            x_t = torch.where(given[..., None, None, None], x0, x_t)
            t = torch.where(given, 0, t if t.ndim == 2 else t[:, None].expand_as(given))
        if config.prediction == "edm":
            c_in = edm_scalings(a, config.sigma_data)[0]
            output = nets["model"](c_in * x_t, t, labels)
            target = edm_target(x0, eps, a, config.sigma_data)
        else:
            output = nets["model"](x_t, t, labels)
            target = training_target(config.prediction, x0, eps, a)
        if config.min_snr_gamma is None and given is None:
            loss = F.mse_loss(output.float(), target)
        else:
            # per frame (B, T) for clips, (B, 1) for images; weighted by each frame's level, over the noised frames
            per_frame = (output.float() - target).square().flatten(x0.ndim - 3).mean(-1).view(B, -1)
            weights = (1.0 if config.min_snr_gamma is None else
                       min_snr_weights(config.prediction, a.flatten(), config.min_snr_gamma, config.sigma_data)
                       .view(B, -1))
            scored = torch.ones_like(per_frame) if given is None else (~given).float()
            loss = ((weights * per_frame * scored).sum(1) / scored.sum(1)).mean()
        yield StepOutput("model", loss, {"loss": loss.detach()})

    @torch.no_grad()
    def sample(self, model: DiffusionModel, n: int, *, labels: Tensor | None = None,
               generator: torch.Generator | None = None, sampler: str | None = None, steps: int | None = None,
               guidance: float | None = None, eta: float | None = None, prompt: str | Sequence[str] | None = None,
               trajectory: list | None = None, progress: Callable[[int, int], None] | None = None,
               first_frame: Tensor | None = None, frame_lag: int | None = None) -> Tensor:
        """Denoise n images from pure noise; labels default to 0, 1, 2, ... for a class-conditional model.

        A video model (config.frames) returns clips (n, T, C, H, W); its labels are (n, K), the classes of each
        clip's K digits, by default 0, 1, 2, ... filling the clips' K slots in turn. A model trained with
        given_first_frame continues `first_frame` (n, C, H, W) in [-1, 1]: it is every clip's frame 0, given to the
        network clean at t = 0 at every step; without labels the clips follow the frame alone (the null class).
        `frame_lag` (default the config's) > 0 staggers a clip's frames: each starts that many steps after the one
        before (samplers/staggered.py, DDIM steps; for models trained with independent_frame_noise).

        A text-conditional model takes `prompt`: one caption for all n images, or n; without one it draws the
        captions of the model's `prompts` in turn. sampler / steps default to the model config's, guidance to the
        config's (conditional models only), eta to 0 (ddim only); every value the model cannot serve raises
        AigcError before any work. `trajectory`, if given, receives (t, x_t) at every step; `progress(step,
        total)` is called after every step (it may raise to stop).
        """
        config = model.config
        device = model.alphas_cumprod.device
        if config.text_conditional and labels is not None:
            raise AigcError("this model is conditioned on captions, not class labels; give a prompt instead")
        check_class_labels(labels, conditional=model.config.conditional, num_classes=model.config.num_classes)
        guidance = check_guidance(model, guidance)
        lag = config.frame_lag if frame_lag is None else frame_lag
        if lag:
            check_frame_lag(model, lag, config.sampler if sampler is None else sampler, eta)
        scheduler = make_sampler(model, config.sampler if sampler is None else sampler, eta=eta)
        scheduler.set_timesteps(config.sampling_steps if steps is None else steps)
        if model.is_video and labels is not None and (labels.ndim != 2 or labels.shape != (n, config.labels_per_video)):
            raise AigcError(f"a video model takes labels ({n}, {config.labels_per_video}): {config.labels_per_video} "
                            f"class ids per clip, got shape {tuple(labels.shape)}")
        if not model.is_video and labels is not None and labels.shape != (n,):
            raise AigcError(f"got labels of shape {tuple(labels.shape)} for {n} images; give (n,) class ids")
        if first_frame is not None:
            _check_first_frame(model, first_frame, n)
        if config.conditional and labels is None and first_frame is None:
            per = config.labels_per_video if model.is_video else None
            labels = torch.arange(n * (per or 1)) % config.num_classes
            labels = labels.view(n, per) if per else labels
        if config.text_conditional:
            labels = prompt_bytes(model, n, prompt)
        elif prompt is not None:
            raise AigcError("this model is not text-conditional, so it takes no prompt; drop it (train with "
                            "model.text_conditional=true on captioned data for prompts)")
        labels = labels.to(device) if labels is not None else None
        x = randn((n, *model.denoised_shape), generator, device)
        if first_frame is not None:
            first_frame = model.to_latents(first_frame.to(device=device, dtype=x.dtype))
            x[:, 0] = first_frame
        was_training = model.training
        model.eval()
        try:
            if lag:
                x = _sample_staggered(model, x, labels, guidance, scheduler, lag, first_frame, trajectory, progress)
                return model.from_latents(x).clamp(-1, 1)
            timesteps = scheduler.timesteps.tolist()
            for i, t in enumerate(timesteps):
                if trajectory is not None:
                    trajectory.append((t, x.clone() if model.autoencoder is None else model.from_latents(x)))
                step_t = torch.full((n,), t, device=device)
                if first_frame is not None:  # one timestep per frame: the given frame is clean, at t = 0
                    step_t = step_t[:, None].repeat(1, config.frames)
                    step_t[:, 0] = 0
                output = model.guided_output(x, step_t, labels, guidance)
                x = scheduler.step(output.float(), t, x, generator=generator)
                if first_frame is not None:
                    x[:, 0] = first_frame  # the sampler's update of the given frame is not used
                if progress is not None:
                    progress(i + 1, len(timesteps))
            x = model.from_latents(x)
        finally:
            model.train(was_training)
        return x.clamp(-1, 1)

    def log_likelihood(self, model: DiffusionModel, images: Tensor, labels: Tensor | None = None, *,
                       timesteps: int | None = None, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Per-image variational bound on -log p(x) (fixed-variance DDPM bound): nats and bits/dim."""
        _refuse_video(model, "give a likelihood bound")
        was_training = model.training
        model.eval()
        try:
            return variational_bound(model, images, labels, timesteps=timesteps, generator=generator)
        finally:
            model.train(was_training)

    def inpaint(self, model: DiffusionModel, images: Tensor, known: Tensor, *, labels: Tensor | None = None,
                generator: torch.Generator | None = None, steps: int | None = None, jump_length: int = 5,
                resamplings: int = 5, guidance: float | None = None) -> Tensor:
        """Repaint where known == 0 (RePaint resampling); images (B, C, H, W) in [-1, 1], known (B, 1, H, W).

        steps defaults to min(50, num_train_steps); guidance to 1 (conditional models, with labels, only).
        """
        _refuse_video(model, "inpaint")
        check_class_labels(labels, conditional=model.config.conditional, num_classes=model.config.num_classes)
        scale = check_guidance(model, guidance)
        if guidance is not None and labels is None:
            raise AigcError("guidance steers the repainting towards a class; give the image's label with it")
        steps = min(50, model.config.num_train_steps) if steps is None else steps
        was_training = model.training
        model.eval()
        try:
            return repaint(model, images, known, steps=steps, jump_length=jump_length, resamplings=resamplings,
                           labels=labels, guidance=scale, generator=generator)
        finally:
            model.train(was_training)


def check_frame_lag(model: DiffusionModel, lag: int, sampler: str, eta: float | None) -> None:
    """AigcError unless `model` can sample with its frames staggered by `lag` steps with this sampler (and eta)."""
    if not model.is_video:
        raise AigcError("frame_lag staggers the frames of a clip; an image model has none: drop it or give 0")
    if lag < 0:
        raise AigcError(f"frame_lag is {lag}; give 0 (every frame at once) or more sampler steps between frames")
    if sampler != "ddim" or eta:
        raise AigcError("staggered frames are sampled with deterministic DDIM steps; give sampler ddim (eta 0) with "
                        "frame_lag, or frame_lag 0")


def _sample_staggered(model: DiffusionModel, x: Tensor, labels: Tensor | None, guidance: float,
                      scheduler: DDIMSampler, lag: int, first_frame: Tensor | None, trajectory: list | None,
                      progress: Callable[[int, int], None] | None) -> Tensor:
    """The staggered loop of `sample` (samplers/staggered.py) over the DDIM sampler's timesteps, clipping as it
    clips: x (n, T, C, H, W) at pure noise (frame 0 given, if first_frame) -> the denoised latents."""
    n, frames = x.shape[:2]
    timesteps = scheduler.timesteps.to(x.device)
    index = staggered_indices(len(timesteps), frames, lag, first_given=first_frame is not None).to(x.device)
    # each position's timestep and alpha_bar; the position after the last one is clean: t = 0, alpha_bar = 1
    levels = torch.cat([timesteps, torch.zeros(1, dtype=timesteps.dtype, device=x.device)])
    alphas = torch.cat([model.alphas_cumprod[timesteps], torch.ones(1, device=x.device)])
    shape = (1, frames, *[1] * (x.ndim - 2))
    for i in range(len(index) - 1):
        now, after = index[i], index[i + 1]
        step_t = levels[now][None].expand(n, frames)
        if trajectory is not None:
            trajectory.append((int(step_t.max()), x.clone() if model.autoencoder is None else model.from_latents(x)))
        output = model.guided_output(x, step_t, labels, guidance)
        moved = ddim_move(scheduler.prediction, output.float(), x, alphas[now].view(shape), alphas[after].view(shape),
                          clip_sample=scheduler.clip_sample).to(x.dtype)
        x = torch.where((after > now).view(shape), moved, x)  # frames waiting or finished stay as they are
        if progress is not None:
            progress(i + 1, len(index) - 1)
    return x


def _timesteps(model: DiffusionModel, noise: ExampleNoise, *shape: int) -> Tensor:
    """(B, *shape) training timesteps from the config's noise sampling: uniform, or EDM's log-normal."""
    config = model.config
    if config.noise_sampling == "lognormal":
        return lognormal_timesteps(noise.randn(*shape), model.alphas_cumprod, config.lognormal_mean,
                                   config.lognormal_std)
    return noise.randint(config.num_train_steps, *shape)


def _check_first_frame(model: DiffusionModel, first_frame: Tensor, n: int) -> None:
    """AigcError unless `first_frame` is (n, C, H, W) for a video model trained to continue a given frame."""
    config = model.config
    if not model.is_video or not config.given_first_frame:
        raise AigcError("this model was not trained to continue a given first frame; train a video model with "
                        "model.given_first_frame=0.5 (or drop the first frame)")
    shape = (n, *model.sample_shape[1:])
    if tuple(first_frame.shape) != shape:
        raise AigcError(f"the first frames must be {shape} (n, C, H, W), one per clip, got "
                        f"{tuple(first_frame.shape)}")


def _refuse_video(model: DiffusionModel, what: str) -> None:
    if model.is_video:
        raise AigcError(f"video diffusion models here cannot {what} (it works on image models); use an image run")


FAMILIES.register("diffusion")(DiffusionFamily())
