"""Diffusion hyper-parameters; saved as config.json beside the weights."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from ...config import require
from .samplers import SAMPLERS
from .schedules import PREDICTIONS, SCHEDULES

__all__ = ["DiffusionConfig", "PRESETS", "LATENT_FACTOR"]

LATENT_FACTOR = 4  # latent diffusion: the autoencoder's latents are this many times smaller a side than the image


@dataclass(frozen=True)
class DiffusionConfig:
    """A denoising UNet and the Gaussian diffusion it is trained for.

    image_size, channels and num_classes are filled from the dataset when left null; so are frames and
    labels_per_video on video data, which make the network a space-time UNet (video_unet.py) over clips.
    """

    name: Literal["diffusion"] = "diffusion"
    image_size: int | None = None
    channels: int | None = None
    num_classes: int | None = None
    conditional: bool = False  # class embedding, trained with label dropout for classifier-free guidance
    label_dropout: float = 0.1  # share of training labels (or captions) replaced by "none", arXiv 2207.12598
    # conditional models: besides the summed class embedding, the labels (a clip's K digits) as tokens that every
    # position attends to by cross-attention at levels whose size is at most this, as captions are; 0: none
    label_attention_resolution: int = 0
    # text-to-image: captions (the data's, as UTF-8 bytes) read by a Transformer encoder over hashed words
    # (layers.text_encoder) trained with the UNet, attended to by cross-attention; captions dropped like labels
    # (label_dropout) for classifier-free guidance
    text_conditional: bool = False
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_buckets: int = 4096  # hash buckets of the words' embeddings
    # a clip run (configs/clip-captioned-mnist.yaml) whose text encoder, pretrained by CLIP's objective on the
    # caption/image pairs, is copied in at the start of training and kept frozen (text_width/layers/heads/
    # buckets must be its); null: the encoder trains from scratch with the UNet
    text_encoder_run: str | None = None
    caption_bytes: int = 96  # the longest caption read, in UTF-8 bytes (data.captions' length)
    cross_attention_resolution: int = 16  # cross-attention at levels whose size is at most this
    # the caption's pooled features added to the time embedding (Imagen's and SD-XL's global text condition);
    # false: the caption reaches the network through cross-attention alone, where each place reads its own words
    text_pooled: bool = True
    # Transformer layers over the caption encoder's tokens, trained with the UNet even where the encoder is frozen
    # (text_encoder_run): they let each word gather what its neighbours say of it ("7" that it is "at the top left")
    text_adapter_layers: int = 0
    prompts: tuple[str, ...] | None = None  # captions the training sample grids show; filled from the data
    # video (filled from video data): frames T per clip, and K, the class labels per clip (one per digit); a model
    # with frames denoises (B, T, C, H, W) clips with the UNet's blocks per frame plus temporal mixing over T
    frames: int | None = None
    labels_per_video: int | None = None
    temporal_attention_resolution: int = 8  # video: attention over T at levels whose size is at most this
    # video: at levels whose size is at most this, that attention is joint over T x H x W (every position of every
    # frame), so a feature can follow a digit that moved; 0: over T at each position only
    spacetime_attention_resolution: int = 0
    # video prediction: the share of training clips whose first frame is given clean (at noise level 0, left out of
    # the loss), so that the model also continues a given frame (sample(first_frame=...)); 0: generation only
    given_first_frame: float = 0.0
    # video: the share of training clips whose frames are each noised to a level of their own (Diffusion Forcing's
    # training, https://arxiv.org/abs/2407.01392), so that the network learns to denoise a frame from its cleaner
    # neighbours; the others share one level, as sampling does. 0: every clip shares one level
    independent_frame_noise: float = 0.0
    # a diffusion run whose newest checkpoint starts this network: every weight of the same name and shape is
    # copied, the rest keep their initialisation. A video model from a one-frame run of the same sizes (data
    # moving-mnist-frames) gets its image layers trained and its temporal layers at zero, the image model first and
    # motion after, as Make-A-Video and Video LDM train; an image run's UNet goes to a video model's image layers
    init_from: str | None = None
    # latent video diffusion (autoencoder.py): the UNet denoises the frames' latents (latent_channels, H/4, W/4) of an
    # autoencoder (autoencoder_width channels) that the run trains first, for autoencoder_steps steps, and freezes;
    # samples are decoded by it. null: the UNet denoises pixels. autoencoder_steps 0: the autoencoder of the latent
    # run init_from, already trained, whose latents that run's weights learnt
    latent_channels: int | None = None
    autoencoder_steps: int = 1000
    autoencoder_width: int = 64
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)  # one level per entry; each level after the first halves H, W
    num_res_blocks: int = 1
    # patch_size p > 1: the UNet works on (p*p*C, H/p, W/p) (pixel unshuffle), the first layer's downsampling in
    # Hoogeboom et al. 2023's "simple diffusion": far less compute per image where a small image has little detail
    patch_size: int = 1
    attention_resolution: int = 8  # self-attention at levels whose size is at most this
    dropout: float = 0.0
    num_train_steps: int = 1000  # T in Ho et al. 2020
    schedule: Literal["linear", "cosine"] = "cosine"
    # what the network outputs: eps, v, x0, or edm (Karras et al. 2022's preconditioning, see schedules.py)
    prediction: Literal["eps", "v", "x0", "edm"] = "eps"
    sigma_data: float = 0.5  # edm only: the data's standard deviation the preconditioning assumes
    # which noise levels training visits: uniform over the T timesteps, or log-normal in sigma (EDM's
    # P_mean, P_std) mapped to the nearest timestep, which spends the steps where the loss can still fall
    noise_sampling: Literal["uniform", "lognormal"] = "uniform"
    lognormal_mean: float = -1.2
    lognormal_std: float = 1.2
    min_snr_gamma: float | None = None  # weight each step's loss by min(SNR, gamma) in x0 terms (5 in the paper)
    lr: float = 2e-4
    sampler: Literal["ddpm", "ddim", "dpm-solver++"] = "dpm-solver++"  # default for sample grids
    sampling_steps: int = 20
    guidance: float = 1.0  # classifier-free guidance used when a caller gives none (conditional models)
    # video sampling: each frame starts denoising this many sampler steps after the one before (samplers/
    # staggered.py; DDIM steps, so sampler ddim); 0: every frame at once
    frame_lag: int = 0

    def __post_init__(self) -> None:
        require(self.schedule in SCHEDULES, "schedule",
                f"unknown schedule {self.schedule!r}; known: {', '.join(SCHEDULES)}")
        require(self.prediction in (*PREDICTIONS, "edm"), "prediction",
                f"unknown prediction type {self.prediction!r}; known: {', '.join(PREDICTIONS)}, edm")
        require(self.sigma_data > 0, "sigma_data", "must be positive")
        require(self.noise_sampling in ("uniform", "lognormal"), "noise_sampling",
                f"unknown noise sampling {self.noise_sampling!r}; known: uniform, lognormal")
        require(self.lognormal_std > 0, "lognormal_std", "must be positive")
        require(math.isfinite(self.guidance) and self.guidance >= 0, "guidance", "must be a number >= 0")
        require(self.sampler in SAMPLERS, "sampler", f"unknown sampler {self.sampler!r}; known: {', '.join(SAMPLERS)}")
        require(self.base_channels >= 4, "base_channels", "must be at least 4")
        require(len(self.channel_mults) > 0 and min(self.channel_mults) > 0, "channel_mults", "positive numbers")
        require(self.num_res_blocks > 0, "num_res_blocks", "must be positive")
        require(0 <= self.label_dropout < 1, "label_dropout", "must be in [0, 1)")
        require(0 <= self.dropout < 1, "dropout", "must be in [0, 1)")
        require(self.num_train_steps >= 2, "num_train_steps", "must be at least 2")
        require(1 <= self.sampling_steps <= self.num_train_steps, "sampling_steps",
                f"must be in 1..num_train_steps ({self.num_train_steps})")
        require(self.lr > 0, "lr", "must be positive")
        require(self.min_snr_gamma is None or self.min_snr_gamma > 0, "min_snr_gamma", "must be positive (or null)")
        require(self.patch_size >= 1, "patch_size", "must be at least 1")
        if self.latent_channels is not None:
            require(self.latent_channels >= 1, "latent_channels", "must be at least 1 (or null for pixels)")
            require(self.autoencoder_steps >= 1 or (self.autoencoder_steps == 0 and self.init_from is not None),
                    "autoencoder_steps", "must be at least 1 (0 only with model.init_from a latent run, whose "
                    "trained autoencoder it takes)")
            require(self.autoencoder_width >= 16 and self.autoencoder_width % 16 == 0, "autoencoder_width",
                    "must be a multiple of 16")
        if self.image_size is not None:
            latent = LATENT_FACTOR if self.latent_channels is not None else 1
            factor = latent * self.patch_size * 2 ** (len(self.channel_mults) - 1)
            require(self.image_size % factor == 0, "image_size",
                    f"must be divisible by {factor} for {len(self.channel_mults)} UNet levels on patches of "
                    f"{self.patch_size}" + (f" of latents {LATENT_FACTOR}x smaller" if latent > 1 else "")
                    + "; change data.image_size, model.channel_mults or model.patch_size")
        if self.conditional and self.num_classes is not None:
            require(self.num_classes >= 2, "conditional",
                    "the dataset has no classes; set model.conditional=false or use labelled data")
        require(not (self.conditional and self.text_conditional), "text_conditional",
                "a model is conditioned on classes or on captions, not both; set one of model.conditional and "
                "model.text_conditional to false")
        require(self.conditional or self.text_conditional or self.guidance == 1.0, "guidance",
                "guidance needs a conditional model; set model.conditional=true (classes) or "
                "model.text_conditional=true (captions), or model.guidance=1")
        require(0 <= self.given_first_frame < 1, "given_first_frame", "must be in [0, 1)")
        require(0 <= self.independent_frame_noise <= 1, "independent_frame_noise", "must be in [0, 1]")
        require(self.frame_lag >= 0, "frame_lag", "must be 0 or more")
        require(not self.frame_lag or self.sampler == "ddim", "frame_lag",
                "staggered frames are sampled with DDIM steps; set model.sampler=ddim or model.frame_lag=0")
        require(not (self.given_first_frame and self.prediction == "edm"), "given_first_frame",
                "a given first frame is not supported with prediction edm; use prediction v or eps")
        require(self.latent_channels is None or self.frames is not None or self.image_size is None, "latent_channels",
                "latent diffusion is built for video models here (video data, which sets model.frames); set "
                "model.latent_channels=null for images")
        require(self.label_attention_resolution >= 0, "label_attention_resolution", "must be 0 or more")
        require(self.conditional or not self.label_attention_resolution, "label_attention_resolution",
                "label attention reads class labels; set model.conditional=true or model.label_attention_resolution=0")
        require(self.spacetime_attention_resolution >= 0, "spacetime_attention_resolution", "must be 0 or more")
        if self.frames is not None:
            require(self.frames >= 1, "frames", "must be at least 1")
            require(not self.given_first_frame or self.frames >= 2, "given_first_frame",
                    "continuing a first frame needs clips of 2 frames or more")
            require(not self.independent_frame_noise or self.frames >= 2, "independent_frame_noise",
                    "frames noised to levels of their own need clips of 2 frames or more")
            require(not self.text_conditional, "text_conditional",
                    "video models are conditioned on class labels, not captions; set model.text_conditional=false")
            if self.conditional:
                require(self.labels_per_video is not None and self.labels_per_video >= 1, "conditional",
                        "the clips have no labels; set model.conditional=false or use labelled video data")
        if self.text_conditional:
            for key in ("text_width", "text_layers", "text_heads", "text_buckets", "caption_bytes",
                        "cross_attention_resolution"):
                require(getattr(self, key) > 0, key, "must be positive")
            require(self.text_adapter_layers >= 0, "text_adapter_layers", "must be 0 or more")
            require(self.text_width % self.text_heads == 0, "text_width",
                    f"must be divisible by text_heads ({self.text_heads})")
        require(self.text_conditional or not self.text_adapter_layers, "text_adapter_layers",
                "adapter layers read captions; set model.text_conditional=true or model.text_adapter_layers=0")
        require(self.text_conditional or self.text_encoder_run is None, "text_encoder_run",
                "a text encoder is read only by a text-conditional model; set model.text_conditional=true or drop it")


    def unet_config(self) -> DiffusionConfig:
        """The config the UNet is built from: this one, or for latent diffusion the latents' channels and size."""
        if self.latent_channels is None:
            return self
        return replace(self, channels=self.latent_channels, image_size=self.image_size // LATENT_FACTOR,
                       latent_channels=None)


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"base_channels": 8, "channel_mults": (1, 2), "num_train_steps": 100, "sampling_steps": 4},
    "small": {"base_channels": 32, "channel_mults": (1, 2, 2)},
    "base": {"base_channels": 64, "channel_mults": (1, 2, 2, 2), "num_res_blocks": 2},
}
