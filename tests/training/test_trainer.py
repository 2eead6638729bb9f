import torch

from aigckit.family import StepOutput
from aigckit.training import Trainer
from helpers import tiny_config


def deterministic_step(model, batch, step):
    """A noise-free loss (a mean over the batch), so batch splits can be compared exactly."""
    yield StepOutput("discriminator", model.discriminator(batch["images"]).pow(2).mean(), {})
    yield StepOutput("generator", model.generator(batch["images"].flatten(1)[:, :16]).pow(2).mean(), {})


def one_step(tmp_path, monkeypatch, batch_size, accum):
    config = tiny_config({"name": "mlp-gan"}, train={"max_steps": 1, "batch_size": batch_size,
                                                     "grad_accum_steps": accum, "use_ema": False})
    trainer = Trainer(config, tmp_path / f"b{batch_size}", show_progress=False)
    monkeypatch.setattr(trainer.family, "training_step", deterministic_step)
    trainer.fit()
    return trainer.model.state_dict()


def test_gradient_accumulation_equals_the_larger_batch(tmp_path, monkeypatch):
    whole = one_step(tmp_path, monkeypatch, batch_size=16, accum=1)
    accumulated = one_step(tmp_path, monkeypatch, batch_size=8, accum=2)
    start = Trainer(tiny_config({"name": "mlp-gan"}), tmp_path / "start", show_progress=False).model.state_dict()
    for key in whole:
        assert torch.allclose(whole[key], accumulated[key], atol=1e-6), key
    assert any(not torch.equal(whole[k], start[k]) for k in whole)  # the step did change the weights


def test_gradient_clipping_bounds_the_norm_the_optimizer_sees(tmp_path):
    config = tiny_config({"name": "dcgan"}, train={"max_steps": 3, "grad_clip": 1e-3})
    trainer = Trainer(config, tmp_path, show_progress=False)
    optimizer = trainer.optimizers["discriminator"]
    seen, original_step = [], optimizer.step

    def recording_step(*args, **kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        seen.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())
        return original_step(*args, **kwargs)

    optimizer.step = recording_step
    trainer.fit()
    assert len(seen) == 3 and max(seen) <= 1e-3 * 1.0001
    assert trainer.latest_logs["grad_norm_discriminator"] > 1e-2  # the norm before clipping is what is logged


def test_a_time_budget_stops_training_with_a_final_checkpoint_and_a_decayed_lr(tmp_path):
    config = tiny_config({"name": "dcgan"}, train={"max_steps": 10**6, "max_minutes": 0.02, "lr_schedule": "cosine",
                                                   "min_lr_fraction": 0.1})
    trainer = Trainer(config, tmp_path, show_progress=False)
    trainer.fit()
    assert 0 < trainer.step < 10**6
    assert trainer.latest_logs["lr_factor"] < 0.15  # the decay followed the clock, not the unreachable max_steps
    assert (tmp_path / "checkpoints" / f"step-{trainer.step:06d}").is_dir()
