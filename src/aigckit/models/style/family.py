"""The style family: feed-forward stylizers trained through the Trainer on a folder of content images.

fast-style (Johnson et al. 2016): one network per style, trained so that its output has the content image's
features and the style image's Gram matrices (the losses of Gatys et al., aigckit.style.losses).
adain (Huang and Belongie 2017): a frozen encoder, adaptive instance normalisation of the content's features to
a style's per-channel statistics, and a decoder trained to turn those features back into an image whose encoder
features match them (content) and whose feature statistics match the style's at every block (style).

The feature networks are frozen and live outside the module tree: they are not trained, not averaged, and not
saved with the weights; the checkpoint records which one was used (`features_used`), and AdaIN's encoder is
rebuilt from that on loading (VGG-19 from its weights file, or the seeded random layout).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from ...data.imagefolder import IMAGE_SUFFIXES
from ...data.photos import VAL_PHOTOS, bundled_photo, photo_crops
from ...errors import AigcError
from ...family import FAMILIES, Batch, FamilyBase, StepOutput
from ...layers import ExampleNoise
from ...style.features import (FeatureNetwork, VGG19Features, encoder_network, loss_network, resolve_features,
                               vgg19_widths)
from ...style.losses import content_loss, gram, mean_std_loss, relative_error, style_loss, total_variation
from ...style.networks import AdaINDecoder, TransformerNet, adain, to_unit
from .config import PRESETS, StyleConfig

__all__ = ["StyleNetwork", "StyleFamily", "load_style_image", "style_bank", "preview_content"]

PREVIEW_STYLES = 4  # adain keeps this many of its training styles in its weights, for sample grids
ENCODER_LAST = {"vgg19": "relu4_1", "random": "relu3_1"}  # the layer AdaIN encodes to


def _style_files(spec: str) -> list[Path | str]:
    """photo:NAME as itself; a folder as its image files (sorted); a file as itself."""
    if spec.startswith("photo:"):
        return [spec]
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise AigcError(f"style folder {spec} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return files
    if not path.is_file():
        raise AigcError(f"style image {spec} does not exist; give an image file, a folder, or photo:NAME")
    return [path]


def _open_style(source: Path | str) -> Image.Image:
    if isinstance(source, str):
        return bundled_photo(source.removeprefix("photo:"))
    try:
        return Image.open(source)
    except OSError as error:
        raise AigcError(f"style image {source} cannot be read ({error}); give a PNG or JPEG") from None


def load_style_image(spec: str, size: int, channels: int) -> Tensor:
    """One style image centre-cropped square and resized to size: (1, channels, size, size) in [-1, 1]."""
    files = _style_files(spec)
    if len(files) != 1:
        raise AigcError(f"style {spec} is a folder of {len(files)} images; fast-style learns one style: give a file")
    crop = photo_crops(_open_style(files[0]), size, channels)[:1]  # the first crop is the whole shorter side
    return torch.from_numpy(crop).float() / 127.5 - 1


def style_bank(specs: tuple[str, ...], size: int, channels: int) -> Tensor:
    """Every crop (whole, halves, quarters; aigckit.data.photos) of every style image: (N, C, size, size)."""
    crops = [photo_crops(_open_style(source), size, channels) for spec in specs for source in _style_files(spec)]
    return torch.from_numpy(np.concatenate(crops)).float() / 127.5 - 1


def preview_content(n: int, size: int, channels: int) -> Tensor:
    """n held-out content images for sample grids: crops of the held-out bundled photos, cycled."""
    crops = np.concatenate([photo_crops(bundled_photo(name), size, channels) for name in VAL_PHOTOS])
    step = max(1, len(crops) // n)
    picked = crops[::step][:n]
    picked = np.concatenate([picked] * (n // len(picked) + 1))[:n]
    return torch.from_numpy(picked).float() / 127.5 - 1


class StyleNetwork(nn.Module):
    """A stylizer's trained network (TransformerNet or AdaINDecoder), its style images as buffers, and the
    frozen feature networks, built on first use."""

    def __init__(self, config: StyleConfig, features_used: str, styles: Tensor | None) -> None:
        super().__init__()
        self.config = config
        self.features_used = features_used  # "vgg19" or "random": what the losses (and AdaIN's encoder) use
        size, channels = config.style_size or config.image_size, config.channels
        if config.name == "fast-style":
            self.net = TransformerNet(channels, config.base_channels, config.residual_blocks)
            shape = (1, channels, size, size)
            self.register_buffer("style_image", styles if styles is not None else torch.zeros(shape))
        else:
            widths = vgg19_widths(ENCODER_LAST[features_used], self.encoder_width())
            # channels-last (NHWC) weights, as the encoder's: see stylize
            self.net = AdaINDecoder(widths, channels).to(memory_format=torch.channels_last)
            shape = (PREVIEW_STYLES, channels, size, size)
            self.register_buffer("preview_styles", styles if styles is not None else torch.zeros(shape))
        self._frozen: dict[str, Any] = {}  # not submodules: never trained, averaged, or saved

    def forward(self, x: Tensor) -> Tensor:
        """fast-style: content images -> stylised; adain: AdaIN features -> images."""
        return self.net(x)

    def _frozen_network(self, key: str, build: Any) -> Any:
        device = next(self.parameters()).device
        if key not in self._frozen:
            self._frozen[key] = build().eval().requires_grad_(False)
        self._frozen[key] = self._frozen[key].to(device)
        return self._frozen[key]

    def loss_features(self) -> FeatureNetwork:
        """fast-style's loss network: VGG-19 or random multi-scale features, as recorded in features_used."""
        c = self.config
        return self._frozen_network("loss", lambda: loss_network(self.features_used, c.vgg_weights, c.feature_seed))

    def encoder(self) -> VGG19Features:
        """AdaIN's encoder: VGG-19 up to relu4_1, or the random VGG-19 layout up to relu3_1."""
        c = self.config
        return self._frozen_network("encoder", lambda: encoder_network(
            self.features_used, c.vgg_weights, c.feature_seed, self.encoder_width()
        ).to(memory_format=torch.channels_last))

    def encoder_width(self) -> int:
        """Channels of the encoder's first block: the config's for random features, VGG-19's 64 with its weights."""
        return 64 if self.features_used == "vgg19" else self.config.encoder_width

    def encoder_layers(self) -> tuple[str, ...]:
        """The encoder's relu<k>_1 layers, whose statistics are the style; the last is the encoding."""
        return tuple(name for name, _ in vgg19_widths(ENCODER_LAST[self.features_used]) if name.endswith("_1"))

    def size_multiple(self) -> int:
        """What the image's sides must be multiples of: 4 (two downsamplings), or 2^(k-1) for AdaIN's relu<k>_1."""
        return 4 if self.config.name == "fast-style" else 2 ** (len(self.encoder_layers()) - 1)

    def adain_features(self, content: Tensor, style: Tensor, alpha: float = 1.0) -> Tensor:
        """What AdaIN's decoder turns into the image: the content's encoding given the style's per-channel
        statistics, mixed with the content's own encoding by alpha (1: all style, 0: the content's features)."""
        encoder, last = self.encoder(), self.encoder_layers()[-1]
        if content.shape[1:] == style.shape[1:]:  # one pass for both: 5-8 % faster for a pair at 256x256
            both = encoder(to_unit(torch.cat([content, style])), (last,))[last]
            content_features, style_features = both[:len(content)].float(), both[len(content):]
        else:
            content_features = encoder(to_unit(content), (last,))[last].float()
            style_features = encoder(to_unit(style), (last,))[last]
        if style_features.shape[0] == 1:
            style_features = style_features.expand(content.shape[0], -1, -1, -1)
        return alpha * adain(content_features, style_features) + (1 - alpha) * content_features

    def stylize(self, content: Tensor, style: Tensor | None = None, alpha: float = 1.0) -> Tensor:
        """content (B, C, H, W) in [-1, 1] -> stylised, same shape; adain also takes style images (B or 1, C, h, w)
        and alpha."""
        if self.config.name == "fast-style":
            return self.net(content)
        # AdaIN runs channels-last (NHWC: its networks' weights and these inputs), the layout oneDNN's CPU
        # convolutions and max pooling take without reordering: 1.9x faster at 256x256 under bf16 (AMD EPYC,
        # AVX-512-BF16); fast-style's padding and instance norm gained nothing and it stays in NCHW
        content, style = (x.contiguous(memory_format=torch.channels_last) for x in (content, style))
        return self.net(self.adain_features(content, style, alpha))


class StyleFamily(FamilyBase):
    """Feed-forward style transfer: Johnson et al.'s per-style network and AdaIN for arbitrary styles."""

    name = "style"
    config_class = StyleConfig
    presets = PRESETS
    models = {
        "fast-style": "Johnson et al.'s transformation network for one style (residual blocks, instance norm)",
        "adain": "AdaIN: frozen encoder, adaptive instance normalisation, trained decoder; any style in one pass",
    }
    sample_options = frozenset({"content", "style", "alpha"})

    def build(self, config: StyleConfig) -> StyleNetwork:
        """The network, with its style images read now (they are stored in the weights)."""
        used = resolve_features(config.features, config.vgg_weights)
        size = config.style_size or config.image_size
        if config.name == "fast-style":
            model = StyleNetwork(config, used, load_style_image(config.style, size, config.channels))
            features = model.loss_features()
        else:
            bank = style_bank(config.styles, size, config.channels)
            model = StyleNetwork(config, used, bank[torch.linspace(0, len(bank) - 1, PREVIEW_STYLES).round().long()])
            model._frozen["bank"] = bank
            features = model.encoder()
        if used == "random":
            print(f"style features: {features.description} stand in for VGG-19, whose weights are not at hand; "
                  f"`aigckit convert` makes them a file", file=sys.stderr)
        return model

    def build_from_checkpoint(self, config: StyleConfig, directory: Path, manifest: dict[str, Any]) -> StyleNetwork:
        """The network for the checkpoint's weights (its style images among them), with the features it trained
        with; reads no style file."""
        return StyleNetwork(config, manifest["features_used"], None)

    def checkpoint_fields(self, model: StyleNetwork) -> dict[str, Any]:
        """Which feature network the losses (and AdaIN's encoder) used."""
        return {"features_used": model.features_used}

    def optimizers(self, model: StyleNetwork, config: StyleConfig) -> dict[str, torch.optim.Optimizer]:
        """One Adam over the trained network."""
        return {"model": torch.optim.Adam(model.net.parameters(), lr=config.lr)}

    def training_step(self, model: StyleNetwork, batch: Batch, step: int,
                      nets: dict[str, nn.Module]) -> Iterator[StepOutput]:
        """fast-style: content + style (Gram) + TV losses of the output; adain: the decoder's output re-encoded
        against the AdaIN target (content) and the style's per-block means and deviations (style)."""
        c = model.config
        content = batch["images"]
        if c.name == "fast-style":
            yield self._fast_step(model, nets["model"], content)
        else:
            yield self._adain_step(model, nets["model"], content, batch["seeds"])

    def _fast_step(self, model: StyleNetwork, net: nn.Module, content: Tensor) -> StepOutput:
        c, features = model.config, model.loss_features()
        layers = features.content_layers + features.style_layers
        with torch.no_grad():
            content_targets = {k: v.float() for k, v in features(to_unit(content), features.content_layers).items()}
            if "grams" not in model._frozen:  # the style's Gram matrices, once per run
                style_features = features(to_unit(model.style_image), features.style_layers)
                model._frozen["grams"] = {k: gram(v) for k, v in style_features.items()}
        output = net(content)
        activations = features(to_unit(output), layers)
        parts = {"content_loss": c.content_weight * content_loss(activations, content_targets),
                 "style_loss": c.resolved_style_weight * style_loss(activations, model._frozen["grams"],
                                                                    symmetric=True),
                 "tv_loss": c.tv_weight * total_variation(output)}
        loss = sum(parts.values())
        return StepOutput("model", loss, {"loss": loss.detach(), **{k: v.detach() for k, v in parts.items()}})

    def _adain_step(self, model: StyleNetwork, net: nn.Module, content: Tensor, seeds: Tensor) -> StepOutput:
        c, encoder, layers = model.config, model.encoder(), model.encoder_layers()
        if "bank" not in model._frozen:  # a loaded checkpoint trained on: read the styles again
            model._frozen["bank"] = style_bank(c.styles, c.style_size or c.image_size, c.channels)
        bank = model._frozen["bank"]
        style = bank[ExampleNoise(seeds, "cpu").randint(len(bank))].to(content.device)
        with torch.no_grad():
            style_features = encoder(to_unit(style), layers)
            target = adain(encoder(to_unit(content), layers[-1:])[layers[-1]], style_features[layers[-1]])
        output = net(target.to(content.dtype))
        activations = encoder(to_unit(output), layers)
        parts = {"content_loss": c.content_weight * relative_error(activations[layers[-1]].float(), target),
                 "style_loss": c.resolved_style_weight * mean_std_loss(activations, style_features),
                 "tv_loss": c.tv_weight * total_variation(output)}
        loss = sum(parts.values())
        return StepOutput("model", loss, {"loss": loss.detach(), **{k: v.detach() for k, v in parts.items()}})

    @torch.no_grad()
    def sample(self, model: StyleNetwork, n: int, *, labels: Tensor | None = None,
               generator: torch.Generator | None = None, content: Tensor | None = None, style: Tensor | None = None,
               alpha: float | None = None) -> Tensor:
        """n stylised images (n, C, H, W) in [-1, 1]: of `content` (n images), or of held-out crops of the bundled
        photos at the model's size; adain: in `style` (1 or n images; default: its preview styles, cycled) with
        `alpha`. Deterministic: the generator is not used."""
        c = model.config
        if c.name == "fast-style" and (style is not None or alpha is not None):
            raise AigcError("fast-style networks learn one style; style and alpha apply to adain models, so drop them")
        if alpha is not None and not 0 <= alpha <= 1:
            raise AigcError(f"alpha must be between 0 (the content's statistics) and 1 (the style's), got {alpha}")
        device = next(model.parameters()).device
        if content is None:
            content = preview_content(n, c.image_size, c.channels)
        if content.shape[0] != n:
            raise AigcError(f"got {content.shape[0]} content images for n={n}; give n images")
        content = content.to(device)
        if c.name == "adain" and style is None:
            style = model.preview_styles[torch.arange(n) % PREVIEW_STYLES]
        output = model.stylize(content, style.to(device) if style is not None else None,
                               1.0 if alpha is None else alpha)
        return output.float().clamp(-1, 1)


FAMILIES.register("style")(StyleFamily())
