"""The family contract, checked once for every registered model (as timm tests over list_models())."""

import math

import pytest
import torch

from aigckit.checkpoint import from_pretrained, latest_checkpoint
from aigckit.family import FAMILIES
from aigckit.training import Trainer

from helpers import save_tiny_transformers_model, tiny_config, tiny_gpt2_config

MODELS = [(m, conditional) for f in FAMILIES if FAMILIES.get(f).modality != "embedding" for m in FAMILIES.get(f).models
          for conditional in ((False,) if f in ("lm", "style") else (False, True))]


def test_every_family_is_covered():
    assert {"gan", "vae", "diffusion", "lm", "style"} <= set(FAMILIES)


@pytest.mark.parametrize("model_name, conditional", MODELS, ids=lambda v: str(v))
def test_family_contract(model_name, conditional, tmp_path):
    if FAMILIES.get("lm").models.get(model_name):
        return check_language_model_contract(model_name, tmp_path)
    model = {"name": model_name, "conditional": conditional}
    if FAMILIES.get("style").models.get(model_name):
        model["features"] = "random"  # no VGG-19 weights in CI
    config = tiny_config(model)
    trainer = Trainer(config, tmp_path / "run", show_progress=False)
    trainer.fit()  # build -> two training steps -> checkpoint at the end

    assert trainer.latest_logs and all(math.isfinite(v) for v in trainer.latest_logs.values())
    family = trainer.family
    loaded = from_pretrained(latest_checkpoint(tmp_path / "run"), use_ema=False).to(trainer.accelerator.device)
    labels = torch.arange(6) % 10 if conditional else None
    ours = family.sample(trainer.model, 6, labels=labels, generator=torch.Generator().manual_seed(0))
    theirs = family.sample(loaded, 6, labels=labels, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ours.cpu(), theirs.cpu())  # save -> load -> same outputs
    assert ours.shape == (6, 1, 8, 8) and ours.min() >= -1 and ours.max() <= 1
    assert (tmp_path / "run" / "samples" / "step-000002.png").is_file()


@pytest.mark.parametrize("loss", ["non-saturating", "hinge", "wgan-gp"])
@pytest.mark.parametrize("model_name", ["mlp-gan", "dcgan"])
def test_gan_losses_and_spectral_norm_train(model_name, loss, tmp_path):
    model = {"name": model_name, "loss": loss, "spectral_norm": loss == "hinge", "conditional": True}
    if loss == "wgan-gp" and model_name == "dcgan":
        model["discriminator_norm"] = "none"
    trainer = Trainer(tiny_config(model, train={"grad_clip": 1.0, "precision": "bf16"}), tmp_path,
                      show_progress=False)
    trainer.fit()
    assert all(math.isfinite(v) for v in trainer.latest_logs.values())
    assert ("gradient_penalty" in trainer.latest_logs) == (loss == "wgan-gp")


def check_language_model_contract(model_name, tmp_path):
    model, data = {"name": model_name}, {"name": "pydoc", "block_size": 16}
    if model_name == "hf":  # a randomly initialised GPT-2 saved locally, with its tokenizer
        save_tiny_transformers_model(tmp_path / "gpt2", tiny_gpt2_config())
        model["pretrained"] = data["tokenizer"] = str(tmp_path / "gpt2")
    config = tiny_config(model, data=data)
    trainer = Trainer(config, tmp_path / "run", show_progress=False)
    trainer.fit()
    assert trainer.latest_logs and all(math.isfinite(v) for v in trainer.latest_logs.values())
    assert ("mfu" in trainer.latest_logs) == (model_name != "hf")  # FLOPs are counted for our own models
    loaded = from_pretrained(latest_checkpoint(tmp_path / "run"), use_ema=False).to(trainer.accelerator.device)
    tokens = torch.randint(0, config.model.vocab_size or 50, (2, 10), device=trainer.accelerator.device)
    with torch.no_grad():
        assert torch.equal(trainer.model.eval()(tokens)[0].cpu(), loaded(tokens)[0].cpu())
    samples = trainer.family.sample(loaded, 3, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (3, 16) and samples.dtype == torch.int64
    assert (tmp_path / "run" / "samples" / "step-000002.txt").is_file()
    assert (tmp_path / "run" / "tokenizer.json").is_file()
