from pathlib import Path

import pytest

from aigckit.config import DataConfig, load_config, parse_overrides
from aigckit.errors import ConfigError
from aigckit.family import family_for_model

CONFIGS = sorted(Path(__file__).parents[1].joinpath("configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    config = load_config(path)
    family = family_for_model(config.model.name).name
    assert config.model.name in path.stem or path.stem.startswith(family)  # <model>-<dataset>.yaml


def test_overrides_are_typed_and_nested():
    config = load_config("configs/dcgan-digits.yaml", ["train.max_steps=7", "model.betas=[0.0, 0.9]",
                                                       "data.root=/x", "train.grad_clip=1"])
    assert config.train.max_steps == 7
    assert config.model.betas == (0.0, 0.9)
    assert config.data.root == "/x"
    assert config.train.grad_clip == 1.0 and isinstance(config.train.grad_clip, float)
    assert parse_overrides(["a.b.c=yes"]) == {"a": {"b": {"c": True}}}


@pytest.mark.parametrize("override, key, words", [
    (["train.max_stepz=3"], "train.max_stepz", "did you mean train.max_steps"),
    (["train.max_steps=abc"], "train.max_steps", "expected int"),
    (["train.max_steps=-5"], "train.max_steps", "must be positive"),
    (["train.precision=fp8"], "train.precision", "'fp32' | 'bf16'"),
    (["model.loss=wgan"], "model.loss", "expected"),
    (["model.name=dcgann"], "model.name", "dcgan"),
    (["model.loss=wgan-gp"], "model.discriminator_norm", "discriminator_norm=none"),
    (["data.image_size=12"], None, None),  # valid for data; dcgan refuses it only once the size is known
    (["trian.max_steps=3"], "trian", "did you mean train"),
    (["model.z_dim=true"], "model.z_dim", "expected int"),
])
def test_config_errors_name_the_key(override, key, words):
    if key is None:
        load_config("configs/dcgan-digits.yaml", override)
        return
    with pytest.raises(ConfigError) as info:
        load_config("configs/dcgan-digits.yaml", override)
    assert info.value.key == key
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_data_config_checks_values():
    with pytest.raises(ConfigError, match="val_fraction"):
        DataConfig(val_fraction=1.5)


@pytest.mark.parametrize("written", ["3e-4", "3E-4", "+3e-04", "0.0003"])
def test_exponent_floats_are_floats_in_yaml_and_on_the_command_line(tmp_path, written):
    """YAML 1.1 reads 3e-4 (no dot) as a string; ours reads it as the float every user means."""
    path = tmp_path / "c.yaml"
    path.write_text(f"model:\n  name: dcgan\n  lr_g: {written}\n")
    assert load_config(path).model.lr_g == pytest.approx(3e-4)
    assert load_config(path, [f"model.lr_d={written}"]).model.lr_d == pytest.approx(3e-4)


def test_precision_defaults_to_auto_and_unknown_values_are_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: dcgan\n")
    assert load_config(path).train.precision == "auto"
    with pytest.raises(ConfigError, match="train.precision"):
        load_config(path, ["train.precision=fp16"])
