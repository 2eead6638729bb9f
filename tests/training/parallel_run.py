"""Run by test_distributed.py, under torchrun or alone: trains tiny runs and saves each process's final weights.

    parallel_run.py equivalence OUT BATCH ACCUM    a GAN, VAE, diffusion model and GPT, 3 steps each
    parallel_run.py dcgan OUT [--die-at K] [--resume]   a class-conditional DCGAN to step 6, checkpoints every 2
    parallel_run.py gpt OUT BATCH [--fsdp] [--die-at K] [--resume]   the GPT to step 4, checkpoints every 2

--fsdp: Accelerate enables FSDP only on GPU-class devices, so on a CPU its state is set by hand after the
Accelerator starts (the one thing `accelerate launch --config_file configs/accelerate/fsdp.yaml` would do on GPUs);
everything after that is Accelerate's own FSDP2 code, on gloo.
"""

import os
import sys
from pathlib import Path

from accelerate import PartialState
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


def use_fsdp() -> None:
    """Make the Trainer's Accelerator shard with FSDP2, wrapping each Transformer block."""
    import accelerate
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    import aigckit.training.trainer as trainer_module

    def accelerator(**kwargs):
        started = accelerate.Accelerator(**kwargs)
        started.state.fsdp_plugin = FullyShardedDataParallelPlugin(
            fsdp_version=2, auto_wrap_policy="transformer_based_wrap", transformer_cls_names_to_wrap=["Block"],
            reshard_after_forward=True, state_dict_type="FULL_STATE_DICT")
        started.state.distributed_type = DistributedType.FSDP
        return started

    trainer_module.Accelerator = accelerator


def gpt(out: Path, batch: int, die_at: int | None, resume: bool) -> None:
    config = EQUIVALENCE["gpt"]({**FP32, "max_steps": 4, "batch_size": batch, "checkpoint_every": 2,
                                 "keep_checkpoints": 0})
    trainer = Trainer(config, out / "run", resume=resume, show_progress=False,
                      extra_callbacks=[DieAt(die_at)] if die_at else None)
    trainer.fit()
    kind = type(trainer.nets["model"]).__name__
    print(f"gpt: rank {trainer.accelerator.process_index} of {trainer.accelerator.num_processes} done, {kind}")


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
    die_at = int(sys.argv[sys.argv.index("--die-at") + 1]) if "--die-at" in sys.argv else None
    if mode == "equivalence":
        equivalence(out, int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "gpt":
        if "--fsdp" in sys.argv:
            use_fsdp()
        gpt(out, int(sys.argv[3]), die_at, "--resume" in sys.argv)
    else:
        dcgan(out, die_at, "--resume" in sys.argv)
    PartialState().destroy_process_group()  # as the CLI does: no process group left for the exit to tear down
