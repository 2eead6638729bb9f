import torch

from aigckit.training import Trainer
from helpers import tiny_config


def test_conditional_dcgan_draws_the_requested_digit(tmp_path, digit_classifier):
    config = tiny_config({"name": "dcgan", "preset": "small", "conditional": True, "lr_g": 2e-4},
                         train={"max_steps": 400, "batch_size": 64, "log_every": 50})
    trainer = Trainer(config, tmp_path, show_progress=False)
    labels = torch.arange(10).repeat_interleave(20)

    def accuracy() -> float:
        images = trainer.family.sample(trainer.ema.model, 200, labels=labels,
                                       generator=torch.Generator().manual_seed(0))
        return float((torch.as_tensor(digit_classifier(images)) == labels).float().mean())

    before = accuracy()
    trainer.fit()
    after = accuracy()
    assert after > 0.7, f"the classifier recognised only {after:.0%} of conditional samples (chance: 10%)"
    assert after > before + 0.4
