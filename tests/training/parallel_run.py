"""Run by test_distributed.py, under torchrun or alone: trains tiny runs and saves each process's final weights.

    parallel_run.py equivalence OUT BATCH ACCUM    a GAN, VAE, diffusion model and GPT, 3 steps each
    parallel_run.py dcgan OUT [--die-at K] [--resume]   a class-conditional DCGAN to step 6, checkpoints every 2
"""

import os
import sys
from pathlib import Path

from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel

from aigckit.config import config_from_dict
from aigckit.training import Trainer
from helpers import tiny_config

FP32 = {"precision": "fp32", "use_ema": False, "grad_clip": 1.0}  # exact sums: no bf16 rounding
EQUIVALENCE = {
    "gan": lambda train: tiny_config({"name": "mlp-gan", "conditional": True}, train=train),
    "vae": lambda train: tiny_config({"name": "conv-vae", "preset": "small", "conditional": True}, train=train),
    "diffusion": lambda train: tiny_config({"name": "diffusion", "conditional": True, "base_channels": 16,
                                            "channel_mults": [1, 2]}, train=train),
    "gpt": lambda train: config_from_dict({"model": {"name": "gpt", "preset": "tiny", "n_layer": 1, "n_embd": 32,
                                                     "n_head": 2, "dropout": 0.0},
                                           "data": {"name": "pydoc", "block_size": 32},
                                           "train": {"log_every": 1, "sample_every": 1000, "checkpoint_every": 1000,
                                                     **train}}),
}


class DieAt:
    """Process 1 exits at once at the end of step `step` (after that step's checkpoint): a crash mid-run."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer) -> None:
        if trainer.step == self.step and trainer.accelerator.process_index == 1:
            os._exit(1)


def save_weights(trainer: Trainer, path: Path) -> None:
    state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}  # tied weights: copies
    save_file(state, str(path.with_name(f"{path.name}-rank{trainer.accelerator.process_index}.safetensors")))


def equivalence(out: Path, batch: int, accum: int) -> None:
    for name, make in EQUIVALENCE.items():
        config = make({**FP32, "max_steps": 3, "batch_size": batch, "grad_accum_steps": accum})
        trainer = Trainer(config, out / name, show_progress=False)
        wrapped = all(isinstance(net, DistributedDataParallel) for net in trainer.nets.values())
        trainer.fit()
        save_weights(trainer, out / name)
        print(f"{name}: rank {trainer.accelerator.process_index} of {trainer.accelerator.num_processes} done, "
              f"DDP {wrapped}")


def dcgan(out: Path, die_at: int | None, resume: bool) -> None:
    config = tiny_config({"name": "dcgan", "conditional": True},
                         train={"max_steps": 6, "batch_size": 8, "checkpoint_every": 2, "keep_checkpoints": 0})
    trainer = Trainer(config, out / "run", resume=resume, show_progress=False,
                      extra_callbacks=[DieAt(die_at)] if die_at else None)
    trainer.fit()
    save_weights(trainer, out / "dcgan")
    print(f"dcgan: rank {trainer.accelerator.process_index} of {trainer.accelerator.num_processes} done")


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "equivalence":
        equivalence(out, int(sys.argv[3]), int(sys.argv[4]))
    else:
        die_at = int(sys.argv[sys.argv.index("--die-at") + 1]) if "--die-at" in sys.argv else None
        dcgan(out, die_at, "--resume" in sys.argv)
