import torch

from aigckit.family import StepOutput
from aigckit.training import Trainer
from helpers import tiny_config


def deterministic_step(model, batch, step, nets):
    """A noise-free loss (a mean over the batch), so batch splits can be compared exactly."""
    yield StepOutput("discriminator", model.discriminator(batch["images"]).pow(2).mean(), {})
    yield StepOutput("generator", model.generator(batch["images"].flatten(1)[:, :16]).pow(2).mean(), {})


def one_step(tmp_path, monkeypatch, batch_size, accum):
    config = tiny_config({"name": "mlp-gan"}, train={"max_steps": 1, "batch_size": batch_size,
                                                     "grad_accum_steps": accum, "use_ema": False,
                                                     "precision": "fp32"})  # exact sums: no bf16 rounding
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
    # the decay followed the clock, not the unreachable max_steps (one step's granularity: a loaded machine)
    assert trainer.latest_logs["lr_factor"] < 0.5
    assert trainer.elapsed >= 0.02 * 60
    assert (tmp_path / "checkpoints" / f"step-{trainer.step:06d}").is_dir()


class SavedTensorMeter:
    """Bytes of the tensors autograd holds for backward passes: live now, and the peak."""

    def __init__(self) -> None:
        self.live = self.peak = 0

    def pack(self, tensor: torch.Tensor):
        meter, size = self, tensor.numel() * tensor.element_size()

        class Held:
            def __init__(self) -> None:
                self.tensor = tensor
                meter.live += size
                meter.peak = max(meter.peak, meter.live)

            def __del__(self) -> None:
                meter.live -= size

        return Held()

    @staticmethod
    def unpack(held) -> torch.Tensor:
        return held.tensor


def peak_saved_bytes(tmp_path, name: str, accum: int) -> int:
    config = tiny_config({"name": name}, data={"image_size": 16},
                         train={"max_steps": 2, "batch_size": 32, "grad_accum_steps": accum, "use_ema": False,
                                "precision": "fp32"})
    trainer = Trainer(config, tmp_path / f"{name}-{accum}", show_progress=False)
    meter = SavedTensorMeter()
    with torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack):
        trainer.fit()
    return meter.peak


def test_gradient_accumulation_holds_one_micro_batch_graph_at_a_time(tmp_path):
    """Each micro-batch's backward runs before the next one's forward: the peak memory of saved activations
    is one micro-batch's, whatever the number of micro-batches (a GAN's D-then-G order included)."""
    for name in ("dcgan", "diffusion"):
        one, four = peak_saved_bytes(tmp_path, name, 1), peak_saved_bytes(tmp_path, name, 4)
        assert four < 1.2 * one, (name, one, four)


def test_metrics_csv_is_appended_not_rewritten_at_every_log(tmp_path):
    inodes = []

    class Watch:
        def on_step_end(self, trainer) -> None:
            inodes.append((tmp_path / "metrics.csv").stat().st_ino)

    config = tiny_config({"name": "dcgan"}, train={"max_steps": 8, "log_every": 1})
    Trainer(config, tmp_path, show_progress=False, extra_callbacks=[Watch()]).fit()
    assert len(set(inodes[2:])) == 1  # once the columns are known, rows go to the end of the same file
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["step"] + [str(s) for s in range(1, 9)]


def test_example_noise_depends_on_the_examples_place_in_the_step_only():
    """However a step's examples are split (processes, micro-batches), each draws the same noise."""
    from aigckit.layers import ExampleNoise, example_seeds

    whole = ExampleNoise(example_seeds(7, 3, 0, 12), "cpu")
    parts = [ExampleNoise(example_seeds(7, 3, first, 4), "cpu") for first in (0, 4, 8)]
    expected = (whole.randint(1000), whole.randn(2, 3), whole.rand())
    got = [(part.randint(1000), part.randn(2, 3), part.rand()) for part in parts]
    for i, want in enumerate(expected):
        assert torch.equal(torch.cat([g[i] for g in got]), want)
    assert not torch.equal(ExampleNoise(example_seeds(7, 4, 0, 12), "cpu").randn(2, 3), expected[1])  # next step
    assert not torch.equal(ExampleNoise(example_seeds(8, 3, 0, 12), "cpu").randn(2, 3), expected[1])  # other seed
    assert len(set(example_seeds(7, 3, 0, 4096).tolist())) == 4096
