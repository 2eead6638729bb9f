"""Golden features of the FID Inception-v3 from an independent implementation: torch-fidelity 0.4.0.

The published Inception weights cannot be had offline, so both networks get the same random weights, made
here deterministically (`random_state`); the inputs are a fixed pattern (`pattern_images`). This script runs
torch-fidelity's `FeatureExtractorInceptionV3` in float64 on them and writes its 2048-d features, with the
sha256 of the weights and inputs they came from, to inception_torch_fidelity.safetensors beside it;
tests/evaluation/test_reference.py checks our port against that file.

torch-fidelity declares torchvision as a dependency and its package __init__ imports it (for its CLIP and
DINOv2 extractors), and torchvision does not import beside the torch build this project pins. Its Inception
is pure torch, so we load that one module file and the three small modules it imports, without running the
package __init__. To regenerate:

    .venv/bin/pip download --no-deps torch-fidelity==0.4.0 -d /tmp/tf
    (cd /tmp/tf && python -m zipfile -e torch_fidelity-0.4.0-py3-none-any.whl unpacked)
    .venv/bin/python tests/evaluation/golden/inception_golden.py /tmp/tf/unpacked
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import types
from pathlib import Path

import numpy as np
import torch

GOLDEN = Path(__file__).with_name("inception_torch_fidelity.safetensors")
TORCH_FIDELITY_VERSION = "0.4.0"


def random_state(template: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float64 weights for an Inception state dict that keep activations of order one through the
    network: He-normal convolutions, batch norms near identity, a small classifier."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, value in template.items():
        shape = value.shape
        if name.endswith("num_batches_tracked"):
            state[name] = torch.zeros_like(value)
        elif name.endswith("conv.weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            state[name] = torch.randn(shape, generator=g, dtype=torch.float64) * (2.0 / fan_in) ** 0.5
        elif name.endswith(("bn.weight", "bn.running_var")):
            state[name] = 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)
        elif name.endswith(("bn.bias", "bn.running_mean")):
            state[name] = 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif name == "fc.weight":
            state[name] = torch.randn(shape, generator=g, dtype=torch.float64) / shape[1] ** 0.5
        elif name == "fc.bias":
            state[name] = 0.01 * torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            raise KeyError(f"no rule for {name}")
    return state


def pattern_images() -> torch.Tensor:
    """Two 299x299 RGB uint8 images from a formula (no random generator): (2, 3, 299, 299)."""
    i, j = np.meshgrid(np.arange(299), np.arange(299), indexing="ij")
    planes = [np.floor(127.5 + 127.499 * np.sin(0.031 * (k + 1) * i + 0.047 * (k % 3 + 1) * j + k))
              for k in range(6)]
    return torch.from_numpy(np.stack(planes).reshape(2, 3, 299, 299).astype(np.uint8))


def sha256(tensors: dict[str, torch.Tensor]) -> str:
    """Digest of tensors by sorted name: names, shapes and bytes."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].contiguous()
        digest.update(f"{name}{tuple(value.shape)}".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


def to_torch_fidelity(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict under torch-fidelity's names. Both follow pytorch-fid's naming (Conv2d_1a_3x3.conv.weight,
    Mixed_7c.branch_pool.bn.running_var, fc.bias, ...); its pooling layers hold no weights; so the map is the
    identity, which the loading below checks strictly, key by key and shape by shape."""
    return dict(state)


def _load_torch_fidelity_inception(site: Path) -> type:
    """FeatureExtractorInceptionV3 from an unpacked torch-fidelity, its package __init__ not run (see above)."""
    package = types.ModuleType("torch_fidelity")
    package.__path__ = [str(site / "torch_fidelity")]
    sys.modules["torch_fidelity"] = package
    module = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    version = (site / "torch_fidelity" / "version.py").read_text()
    if f'"{TORCH_FIDELITY_VERSION}"' not in version:
        raise SystemExit(f"expected torch-fidelity {TORCH_FIDELITY_VERSION}, found: {version.strip()}")
    return module.FeatureExtractorInceptionV3


def main(site: Path) -> None:
    """Compute torch-fidelity's features and write the golden file; print how far our port is from them."""
    import tempfile

    from safetensors.torch import save_file

    from aigckit.evaluation.extractors import FIDInceptionV3

    ours = FIDInceptionV3().double().eval()
    state = random_state(ours.state_dict())
    ours.load_state_dict(state, strict=True)
    images = pattern_images()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.pth"
        torch.save(to_torch_fidelity({k: v.float() for k, v in state.items()}), path)  # the .pth it reads
        reference = _load_torch_fidelity_inception(site)(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path),
            feature_extractor_internal_dtype="float64")
    # 0.4.0's text_to_dtype maps "float64" to torch.float32, so the module is made float64 here; then the float64
    # weights replace the float32 copy it read
    reference.double().feature_extractor_internal_dtype = torch.float64
    reference.load_state_dict(to_torch_fidelity(state), strict=True)
    with torch.no_grad():
        (features,) = reference(images)  # uint8 -> (x - 128) / 128 inside; 299 px in, so its resize is identity
        mine = ours((images.double() - 128) / 128)
    error = ((mine - features.double()).abs().max() / features.abs().max()).item()
    print(f"torch-fidelity {TORCH_FIDELITY_VERSION}: features {tuple(features.shape)}, |ours - theirs| / max {error:.2e}")
    save_file({"features": features.float().contiguous()}, str(GOLDEN),
              metadata={"torch_fidelity": TORCH_FIDELITY_VERSION, "weights_sha256": sha256(state),
                        "images_sha256": sha256({"images": images}), "internal_dtype": "float64"})
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
