"""Feature networks for style transfer: VGG-19 (published ImageNet weights from a local safetensors file) and,
offline without those weights, random-weight multi-scale features.

VGG-19's convolutional part is laid out as torchvision's `vgg19().features` (the same module indices, so its
weights load by name) and its activations are named as in the literature: relu1_1 ... relu5_1. Without weights,
`RandomMultiScale` draws seeded random 3x3 filters applied to the image at 1, 1/2, 1/4 and 1/8 of its size:
random filters carry texture statistics (Ustyuzhaninov et al. 2017, "What does it take to generate natural
textures?"; He et al. 2016, "A powerful generative model using random weights for the deep image
representation"), and the pyramid stands in for their large filters at a fraction of the cost.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..atomic import atomic_path
from ..errors import AigcError

__all__ = ["VGG19Features", "RandomMultiScale", "FeatureNetwork", "convert_vgg19", "feature_network",
           "default_vgg19_path", "VGG19_URL", "VGG_LAYERS", "resolve_features", "loss_network", "encoder_network",
           "random_vgg19", "vgg19_widths"]

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"  # torchvision's ImageNet weights
VGG19_SHA256_PREFIX = "dcbb9e9d"  # torchvision names each file by the start of its sha256
# torchvision's vgg19 `features`: conv widths per block; a ReLU follows every conv, a max-pool ends every block
VGG19_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG_HELP = (f"convert torchvision's VGG-19 weights once: download {VGG19_URL} and run `aigckit convert "
            f"vgg19-dcbb9e9d.pth --out {{path}}`")


def _vgg_layer_indices() -> dict[str, int]:
    """relu<block>_<conv> -> its index in torchvision's `features` Sequential."""
    names, index = {}, 0
    for block, widths in enumerate(VGG19_BLOCKS, start=1):
        for conv in range(1, len(widths) + 1):
            names[f"relu{block}_{conv}"] = index + 1  # conv at index, its ReLU right after
            index += 2
        index += 1  # the block's max-pool
    return names


VGG_LAYERS = _vgg_layer_indices()


class FeatureNetwork(nn.Module):
    """A network that returns named activations of an RGB image in [0, 1]; `description` names it."""

    description: str
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]

    def forward(self, image: Tensor, layers: tuple[str, ...]) -> dict[str, Tensor]:  # pragma: no cover
        raise NotImplementedError


def _scaled_blocks(width: int) -> tuple[tuple[int, ...], ...]:
    """VGG19_BLOCKS with `width` channels in the first block instead of 64, every block scaled alike."""
    return tuple(tuple(channels * width // 64 for channels in block) for block in VGG19_BLOCKS)


class VGG19Features(FeatureNetwork):
    """VGG-19's convolutional layers up to relu5_1, returning the named activations asked for; `width` is the
    first block's channels (VGG-19's: 64), every block scaled with it (a narrower random encoder)."""

    content_layers = ("relu4_2",)  # Gatys et al. 2016
    style_layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.width = width
        layers: list[nn.Module] = []
        channels = 3
        for block_widths in _scaled_blocks(width):
            for out_channels in block_widths:
                layers += [nn.Conv2d(channels, out_channels, 3, padding=1), nn.ReLU()]
                channels = out_channels
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers[:VGG_LAYERS["relu5_1"] + 1])  # nothing past relu5_1 is used
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.description = "VGG-19 (untrained)"

    def forward(self, image: Tensor, layers: tuple[str, ...]) -> dict[str, Tensor]:
        """Activations of `layers` for images (B, 3, H, W) in [0, 1]."""
        unknown = set(layers) - set(VGG_LAYERS)
        if unknown:
            raise AigcError(f"unknown VGG-19 layer {sorted(unknown)[0]!r}; known: {', '.join(VGG_LAYERS)}")
        wanted = {VGG_LAYERS[name]: name for name in layers}
        x, out = (image - self.mean) / self.std, {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in wanted:
                out[wanted[index]] = x
                if len(out) == len(wanted):
                    break
        return out

    def truncate(self, last: str) -> VGG19Features:
        """Keep the layers up to `last` (relu<block>_<conv>) only; returns self."""
        self.features = self.features[:VGG_LAYERS[last] + 1]
        return self

    def layer_widths(self) -> list[tuple[str, int]]:
        """(relu name, channels) of every ReLU kept, in order: what a decoder mirrors."""
        last = max((name for name, index in VGG_LAYERS.items() if index < len(self.features)), key=VGG_LAYERS.get)
        return vgg19_widths(last, self.width)


def vgg19_widths(last: str, width: int = 64) -> list[tuple[str, int]]:
    """(relu name, channels) of VGG-19's ReLUs up to `last`, from its layout alone (no network built); `width`:
    the first block's channels, as VGG19Features takes it."""
    widths = [(f"relu{block}_{conv}", channels) for block, block_widths in enumerate(_scaled_blocks(width), start=1)
              for conv, channels in enumerate(block_widths, start=1)]
    return [(name, width) for name, width in widths if VGG_LAYERS[name] <= VGG_LAYERS[last]]


def random_vgg19(seed: int, last: str = "relu3_1", width: int = 64) -> VGG19Features:
    """VGG-19's layout up to `last` with seeded random filters (He initialisation, zero-mean), `width` channels in
    its first block (VGG-19's: 64): the encoder that stands in for VGG-19 without its weights."""
    network = VGG19Features(width).truncate(last)
    generator = torch.Generator().manual_seed(seed)
    for module in network.features:
        if isinstance(module, nn.Conv2d):
            weight = torch.randn(module.weight.shape, generator=generator) * (2 / module.weight[0].numel()) ** 0.5
            module.weight.data = weight - weight.mean(dim=(1, 2, 3), keepdim=True)
            module.bias.data.zero_()
    scaled = "" if width == 64 else f" at {width}/64 of its width"
    network.description = f"random VGG-19 layout{scaled} up to {last} (seed {seed}; no VGG-19 weights)"
    return network.eval().requires_grad_(False)


class RandomMultiScale(FeatureNetwork):
    """Two seeded random 3x3 conv + ReLU layers applied at 1, 1/2, 1/4 and 1/8 of the image's size, and the pixels
    themselves ("colour"): the filters are zero-mean, so they see edges and colour contrasts but not brightness or
    the colour cast, whose second moments the colour layer's Gram matrix (3x3) carries."""

    content_layers = ("scale2",)
    style_layers = ("colour", "scale1", "scale2", "scale4", "scale8")

    def __init__(self, seed: int = 0, width: int = 128) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.scales = nn.ModuleDict()
        for name in self.style_layers[1:]:
            first, second = nn.Conv2d(3, width // 2, 3, padding=1), nn.Conv2d(width // 2, width, 3, padding=1)
            for conv in (first, second):  # He initialisation, zero-mean filters: responses to edges, not brightness
                weight = torch.randn(conv.weight.shape, generator=generator) * (2 / conv.weight[0].numel()) ** 0.5
                conv.weight.data = weight - weight.mean(dim=(1, 2, 3), keepdim=True)
                conv.bias.data.zero_()
            self.scales[name] = nn.Sequential(first, nn.ReLU(), second, nn.ReLU())
        self.requires_grad_(False)
        self.description = f"random multi-scale features (seed {seed}; no VGG-19 weights)"

    def forward(self, image: Tensor, layers: tuple[str, ...]) -> dict[str, Tensor]:
        """Activations of `layers` (colour, scale1, scale2, scale4, scale8) for images in [0, 1]."""
        unknown = set(layers) - set(self.style_layers)
        if unknown:
            raise AigcError(f"unknown layer {sorted(unknown)[0]!r} of the random features; known: "
                            f"{', '.join(self.style_layers)}")
        x = image - 0.5
        return {name: image if name == "colour" else
                self.scales[name](F.avg_pool2d(x, int(name.removeprefix("scale"))) if name != "scale1" else x)
                for name in layers}


def default_vgg19_path() -> Path:
    """Where the converted VGG-19 weights are looked for: $AIGCKIT_VGG19, else the user's cache folder."""
    if os.environ.get("AIGCKIT_VGG19"):
        return Path(os.environ["AIGCKIT_VGG19"])
    cache = Path(os.environ.get("AIGCKIT_CACHE", Path.home() / ".cache" / "aigckit"))
    return cache / "weights" / "vgg19.safetensors"


def load_vgg19(path: Path) -> VGG19Features:
    """VGG-19 with the weights of a safetensors file written by `convert_vgg19`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise AigcError(f"{path} is not a safetensors file ({error}); {VGG_HELP.format(path=path)}") from None
    network = VGG19Features()
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError:
        raise AigcError(f"{path} does not hold VGG-19 weights; {VGG_HELP.format(path=path)}") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    network.description = f"VGG-19 ImageNet weights ({path.name}, sha256 {digest})"
    return network.eval().requires_grad_(False)


def convert_vgg19(source: Path, out: Path) -> Path:
    """torchvision's VGG-19 `.pth` -> a safetensors file of its convolutional layers up to relu5_1.

    The one place aigckit reads a pickle-format file: with torch.load(weights_only=True), which accepts tensors
    and plain containers only, never arbitrary objects."""
    from safetensors.torch import save_file

    if not source.is_file():
        raise AigcError(f"{source} is not a file; download {VGG19_URL} and pass its path")
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure means the file is not a state dict of tensors
        raise AigcError(f"{source} is not a state dict of tensors ({type(error).__name__}); pass torchvision's "
                        f"vgg19-dcbb9e9d.pth") from None
    wanted = VGG19Features().state_dict()
    if not isinstance(state, dict) or any(key not in state or state[key].shape != value.shape
                                          for key, value in wanted.items()):
        raise AigcError(f"{source} does not hold torchvision's VGG-19 weights (features.* missing or of other "
                        f"shapes); pass vgg19-dcbb9e9d.pth")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        save_file({key: state[key].float().contiguous() for key in wanted}, str(tmp),
                  metadata={"source": source.name, "network": "torchvision vgg19 features up to relu5_1"})
    return out


def _download_vgg19(path: Path) -> bool:
    """Fetch torchvision's VGG-19 weights and convert them into `path`; False when no network is reachable."""
    import tempfile
    import urllib.request

    try:
        with tempfile.TemporaryDirectory() as folder:
            pth = Path(folder) / "vgg19.pth"
            with urllib.request.urlopen(VGG19_URL, timeout=10) as response, open(pth, "wb") as out:  # noqa: S310
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            if not hashlib.sha256(pth.read_bytes()).hexdigest().startswith(VGG19_SHA256_PREFIX):
                raise AigcError(f"the download of {VGG19_URL} does not have the published checksum; try again")
            convert_vgg19(pth, path)
    except OSError:
        return False
    return True


def feature_network(weights: Path | None = None, *, seed: int = 0, download: bool = True) -> FeatureNetwork:
    """VGG-19 from `weights` (or the default path, downloaded there when a network is reachable); without
    weights, RandomMultiScale(seed). A weights file that is given must exist."""
    if weights is not None:
        if not Path(weights).is_file():
            raise AigcError(f"--vgg-weights {weights} is not a file; {VGG_HELP.format(path=weights)}")
        return load_vgg19(Path(weights))
    path = default_vgg19_path()
    if path.is_file() or (download and _download_vgg19(path)):
        return load_vgg19(path)
    return RandomMultiScale(seed)


FEATURE_KINDS = ("auto", "vgg19", "random")


def resolve_features(kind: str, weights: str | Path | None = None) -> str:
    """'vgg19' or 'random' for a features setting: 'auto' is vgg19 when its weights file is present (`weights` or
    the default path), random otherwise; 'vgg19' needs the file."""
    if kind not in FEATURE_KINDS:
        raise AigcError(f"unknown features {kind!r}; use {', '.join(FEATURE_KINDS)}")
    path = Path(weights) if weights is not None else default_vgg19_path()
    if kind == "vgg19" and not path.is_file():
        raise AigcError(f"features: vgg19 needs the weights file {path}; {VGG_HELP.format(path=path)}")
    if weights is not None and not path.is_file():
        raise AigcError(f"vgg_weights {weights} is not a file; {VGG_HELP.format(path=weights)}")
    return "vgg19" if kind == "vgg19" or path.is_file() else "random"


def loss_network(kind: str, weights: str | Path | None, seed: int) -> FeatureNetwork:
    """The network whose features a loss compares: VGG-19 (kind 'vgg19') or RandomMultiScale(seed)."""
    if kind == "vgg19":
        return load_vgg19(Path(weights) if weights is not None else default_vgg19_path())
    return RandomMultiScale(seed)


def encoder_network(kind: str, weights: str | Path | None, seed: int, width: int = 64) -> VGG19Features:
    """An encoder for AdaIN: VGG-19 up to relu4_1 (kind 'vgg19', as Huang and Belongie), or the random VGG-19
    layout up to relu3_1 with `width` channels in its first block (a deeper random stack carries little more)."""
    if kind == "vgg19":
        network = load_vgg19(Path(weights) if weights is not None else default_vgg19_path()).truncate("relu4_1")
        network.description += ", up to relu4_1"
        return network
    return random_vgg19(seed, "relu3_1", width)
