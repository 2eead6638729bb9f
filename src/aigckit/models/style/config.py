"""Style-transfer network hyper-parameters; saved as config.json beside the weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ...config import require

__all__ = ["StyleConfig", "PRESETS", "DEFAULT_STYLE_WEIGHTS"]

# A network trained to convergence, unlike Gatys' optimisation that starts at the content and stops early,
# finds the trade-off the weights set. fast-style's Gram loss is the symmetric error (aigckit.style.losses): with
# the plain relative error a black image beat the content (probes collapsed to black at weights 1 and 10). On
# the preset's style, weight 3 stayed near the content and 20 collapsed to the style's white background in
# 1.5-minute probes; 6 is between. AdaIN's content target is already restyled, so its weight only balances
# re-encoding against statistics.
DEFAULT_STYLE_WEIGHTS = {"fast-style": 6.0, "adain": 2.0}


@dataclass(frozen=True)
class StyleConfig:
    """A feed-forward stylizer: Johnson et al.'s network for one style, or AdaIN's decoder for any style.

    image_size, channels and num_classes are filled from the dataset (the content images) when left null.
    Style images are named as a file, a folder (adain), or photo:NAME for a photo bundled with scikit-image or
    scikit-learn (aigckit.data.photos).
    """

    name: Literal["fast-style", "adain"] = "fast-style"
    image_size: int | None = None
    channels: int | None = None
    num_classes: int | None = None  # from the data; the stylizers take no class
    conditional: bool = False
    style: str = "photo:immunohistochemistry"  # fast-style: the one style it learns
    styles: tuple[str, ...] = ("photo:coffee", "photo:hubble_deep_field", "photo:immunohistochemistry",
                               "photo:retina", "photo:brick", "photo:gravel")  # adain: the styles it trains on
    style_size: int | None = None  # style images are cropped square and resized to this side (null: image_size)
    # the network the losses compare features with: vgg19 (its weights file: vgg_weights, else the default path),
    # random (seeded random filters), or auto: vgg19 when its file is present, random otherwise
    features: Literal["auto", "vgg19", "random"] = "auto"
    vgg_weights: str | None = None
    feature_seed: int = 0
    content_weight: float = 1.0
    style_weight: float | None = None  # null: DEFAULT_STYLE_WEIGHTS of the model
    tv_weight: float = 0.0
    base_channels: int = 32  # fast-style: channels of the first convolution (Johnson et al.: 32)
    # adain with random features: channels of the random encoder's first block, doubling per block as VGG-19's
    # (64); the decoder mirrors it. VGG-19's weights, when used, have their own 64
    encoder_width: int = 64
    residual_blocks: int = 5  # fast-style
    lr: float = 1e-3

    def __post_init__(self) -> None:
        require(not self.conditional, "conditional", "style-transfer networks take no class; set it to false")
        require(self.base_channels > 0, "base_channels", "must be positive")
        require(self.residual_blocks >= 0, "residual_blocks", "must be 0 or more")
        require(self.encoder_width > 0 and self.encoder_width % 8 == 0, "encoder_width", "must be a positive "
                f"multiple of 8 (VGG-19's is 64), got {self.encoder_width}")
        require(len(self.styles) > 0, "styles", "name at least one style image, folder or photo:NAME")
        require(self.style_size is None or self.style_size >= 16, "style_size", "must be at least 16")
        for key in ("content_weight", "tv_weight"):
            require(getattr(self, key) >= 0, key, "must be >= 0")
        require(self.style_weight is None or self.style_weight >= 0, "style_weight", "must be >= 0")
        require(self.lr > 0, "lr", "must be positive")
        if self.image_size is not None:
            multiple = 4 if self.name == "fast-style" else 8
            require(self.image_size % multiple == 0, "image_size",
                    f"{self.name} halves the image {multiple.bit_length() - 1} times, so it needs a multiple of "
                    f"{multiple}, got {self.image_size}")

    @property
    def resolved_style_weight(self) -> float:
        """style_weight, or the model's default."""
        return DEFAULT_STYLE_WEIGHTS[self.name] if self.style_weight is None else self.style_weight


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"base_channels": 8, "residual_blocks": 1},
    "small": {"base_channels": 16, "residual_blocks": 3},
    "base": {},
}
