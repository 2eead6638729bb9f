import pytest
import torch

from aigckit.errors import AigcError
from aigckit.style.features import VGG_LAYERS, VGG19Features, convert_vgg19, load_vgg19


def test_vgg_layers_are_named_at_torchvision_indices():
    # the PyTorch tutorial's and torchvision's indices of vgg19().features
    assert [VGG_LAYERS[n] for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")] == \
        [1, 6, 11, 20, 22, 29]
    out = VGG19Features()(torch.rand(1, 3, 32, 32), ("relu1_1", "relu3_1", "relu5_1"))
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == {
        "relu1_1": (64, 32, 32), "relu3_1": (256, 8, 8), "relu5_1": (512, 2, 2)}
    with pytest.raises(AigcError, match="unknown VGG-19 layer 'relu6_1'"):
        VGG19Features()(torch.rand(1, 3, 32, 32), ("relu6_1",))


def test_the_weights_converter_round_trips(tmp_path):
    torch.manual_seed(0)
    original = VGG19Features()
    state = {**original.state_dict(), "features.34.weight": torch.zeros(512, 512, 3, 3),
             "classifier.0.weight": torch.zeros(8, 8)}  # torchvision's file holds more than we keep
    torch.save(state, tmp_path / "vgg19.pth")
    loaded = load_vgg19(convert_vgg19(tmp_path / "vgg19.pth", tmp_path / "vgg19.safetensors"))
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(loaded(x, ("relu4_2",))["relu4_2"], original(x, ("relu4_2",))["relu4_2"])
    assert loaded.description.startswith("VGG-19 ImageNet weights (vgg19.safetensors")

    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(AigcError, match="does not hold torchvision's VGG-19 weights"):
        convert_vgg19(tmp_path / "other.pth", tmp_path / "other.safetensors")
    assert not (tmp_path / "other.safetensors").exists()
