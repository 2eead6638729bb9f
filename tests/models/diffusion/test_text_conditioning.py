"""Text conditioning in the diffusion family: the hashed-word encoder, cross-attention, guidance and prompts."""

from __future__ import annotations

import pytest
import torch

from aigckit.config import ConfigError
from aigckit.data.captions import encode_captions
from aigckit.errors import AigcError
from aigckit.layers.text_encoder import MAX_WORDS, hashed_words
from aigckit.models.diffusion.config import DiffusionConfig
from aigckit.models.diffusion.family import DiffusionFamily, DiffusionModel


def _model(**overrides) -> DiffusionModel:
    config = DiffusionConfig(image_size=16, channels=1, text_conditional=True, base_channels=16,
                             channel_mults=(1, 2), text_width=32, text_layers=1, text_heads=2, caption_bytes=48,
                             num_train_steps=50, sampling_steps=3, prompts=("a small 7 at the top left",
                                                                            "a large 2 in the centre"),
                             **overrides)
    torch.manual_seed(0)
    model = DiffusionModel(config)
    for p in model.parameters():  # zero-initialised outputs and projections would hide the condition
        torch.nn.init.normal_(p, std=0.05)
    return model


def _bytes(texts: list[str], length: int = 48) -> torch.Tensor:
    return torch.from_numpy(encode_captions(texts, length)).long()


def test_cross_attention_alone_carries_the_caption_to_the_output():
    assert _model().unet.text_embed is not None
    model = _model(text_pooled=False)  # the pooled path off: only cross-attention reads the caption
    assert model.unet.text_embed is None
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([7, 7])
    a = model.unet(x, t, _bytes(["a small 7 at the top left", "a large 2 in the centre"]))
    b = model.unet(x, t, _bytes(["a small 7 at the top left", "a large 2 on the right"]))
    assert torch.equal(a[0], b[0])
    assert (a[1] - b[1]).abs().max() > 1e-5
    for block in model.unet.modules():  # and with cross-attention's output projection off, nothing does
        if block.__class__.__name__ == "CrossAttention":
            block.proj.weight.data.zero_()
            block.proj.bias.data.zero_()
    a = model.unet(x, t, _bytes(["a small 7 at the top left", "a large 2 in the centre"]))
    b = model.unet(x, t, _bytes(["a small 7 at the top left", "a large 2 on the right"]))
    assert torch.equal(a, b)


@pytest.mark.parametrize("adapter_layers", [0, 1])
def test_a_caption_encodes_alike_whatever_its_padding_and_batch(adapter_layers):
    model = _model(text_adapter_layers=adapter_layers)
    x, t = torch.randn(3, 1, 16, 16), torch.tensor([3, 3, 3])
    together = model.unet(x, t, _bytes(["a large 2 in the centre", "a small 7 at the top left and more", ""]))
    alone = model.unet(x[:1], t[:1], _bytes(["a large 2 in the centre"], length=30))
    torch.testing.assert_close(together[:1], alone, atol=1e-5, rtol=1e-5)


def test_guidance_mixes_the_empty_caption_and_the_prompt():
    model = _model().eval()
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([5, 5])
    captions = _bytes(["a small 7 at the top left", "a large 2 in the centre"])
    conditional = model.denoise(x, t, captions)
    unconditional = model.denoise(x, t, torch.zeros_like(captions))
    guided = model.guided_output(x, t, captions, guidance=3.0)
    torch.testing.assert_close(guided, unconditional + 3.0 * (conditional - unconditional), atol=1e-5, rtol=1e-5)


def test_samples_are_the_prompt_and_seed_s():
    family, model = DiffusionFamily(), _model()
    first = family.sample(model, 2, prompt="a small 7 at the top left", generator=torch.Generator().manual_seed(1))
    again = family.sample(model, 2, prompt="a small 7 at the top left", generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, again)  # (that they follow the prompt: tests/pipelines/test_text_to_image.py)
    grid = family.sample(model, 4, generator=torch.Generator().manual_seed(1))  # the model's prompts, a run each
    per_prompt = family.sample(model, 2, prompt=list(model.config.prompts),
                               generator=torch.Generator().manual_seed(1))
    assert grid.shape == (4, 1, 16, 16) and per_prompt.shape == (2, 1, 16, 16)


def test_prompts_and_labels_are_checked():
    family, model = DiffusionFamily(), _model()
    with pytest.raises(AigcError, match="2 prompts for 3 images"):
        family.sample(model, 3, prompt=["a", "b"])
    with pytest.raises(AigcError, match="at most 48"):
        family.sample(model, 1, prompt="x" * 49)
    with pytest.raises(AigcError, match="captions, not class labels"):
        family.sample(model, 1, labels=torch.tensor([1]))
    image_model = DiffusionModel(DiffusionConfig(image_size=8, channels=1, base_channels=8, channel_mults=(1,)))
    with pytest.raises(AigcError, match="takes no prompt"):
        family.sample(image_model, 1, prompt="a 7")


def test_the_config_refuses_two_conditions_and_guidance_without_one():
    with pytest.raises(ConfigError, match="classes or on captions"):
        DiffusionConfig(conditional=True, text_conditional=True)
    with pytest.raises(ConfigError, match="guidance"):
        DiffusionConfig(guidance=2.0)
    assert DiffusionConfig(text_conditional=True, guidance=2.0).guidance == 2.0
    with pytest.raises(ConfigError, match="text_width"):
        DiffusionConfig(text_conditional=True, text_width=30, text_heads=4)
    with pytest.raises(ConfigError, match="text_adapter_layers"):
        DiffusionConfig(text_adapter_layers=1)


def test_captions_are_read_as_hashed_words():
    tokens = hashed_words(_bytes(["A small 7, at the TOP", "a small 7 at the top left", ""]), 4096)
    assert tokens.shape == (3, 8) and tokens[:, 0].tolist() == [1, 1, 1]  # the start token, then up to 7 words
    assert torch.equal(tokens[0, 1:7], tokens[1, 1:7])  # case and punctuation do not matter
    assert tokens[0, 7] == 0 and tokens[2, 1:].eq(0).all()  # padding after the last word; an empty caption
    assert len(set(tokens[1, 1:].tolist())) == 7 and tokens.max() < 4096 + 2
    long = hashed_words(_bytes(["word " * 40], length=200), 64)
    assert long.shape == (1, 1 + MAX_WORDS) and long[0, 1:].ge(2).all() and long.max() < 66
