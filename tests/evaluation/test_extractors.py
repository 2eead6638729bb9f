import pytest
import torch
from safetensors.torch import save_file

from aigckit.config import DataConfig
from aigckit.errors import AigcError
from aigckit.evaluation.extractors import FIDInceptionV3, load_inception, load_or_train_evaluator


def test_the_digits_evaluator_is_accurate_and_cached(tmp_path):
    data = DataConfig(name="digits", image_size=8)
    evaluator = load_or_train_evaluator(data, tmp_path, steps=600)
    assert evaluator.info["held_out_accuracy"] > 0.95
    again = load_or_train_evaluator(data, tmp_path)  # read back from the cache, not retrained
    assert again.info == evaluator.info
    images = torch.rand(5, 1, 8, 8) * 2 - 1
    assert torch.equal(again.features_and_logits(images)[0], evaluator.features_and_logits(images)[0])
    folder = tmp_path / "evaluators" / f"digits-8-{evaluator.info['data_fingerprint']}"
    (folder / "model.safetensors").write_bytes(b"damaged")
    with pytest.raises(AigcError, match="delete"):
        load_or_train_evaluator(data, tmp_path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_inception_loads_a_state_dict_from_a_path(tmp_path, suffix):
    torch.manual_seed(0)
    reference = FIDInceptionV3().eval()
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    model, digest = load_inception(path)
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x))
        assert model(x).shape == (2, 2048)
    assert len(digest) == 64


def test_inception_errors_say_how_to_get_the_weights(tmp_path):
    with pytest.raises(AigcError, match="pt_inception-2015-12-05"):
        load_inception(tmp_path / "missing.pth")
    torch.save({"not": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(AigcError, match="does not hold the FID Inception weights"):
        load_inception(tmp_path / "wrong.pth")
