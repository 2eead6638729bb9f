"""Run by torchrun in test_distributed.py: train on two processes, each saving the weights it ends with."""

import sys
from pathlib import Path

from safetensors.torch import save_file

from aigckit.training import Trainer
from helpers import tiny_config

out = Path(sys.argv[1])
config = tiny_config({"name": "dcgan", "conditional": True}, train={"max_steps": 6, "batch_size": 8})
trainer = Trainer(config, out / "run", show_progress=False)
trainer.fit()
rank = trainer.accelerator.process_index
state = {k: v.contiguous() for k, v in trainer.model.state_dict().items()}
save_file(state, str(out / f"rank{rank}.safetensors"))
print(f"rank {rank} of {trainer.accelerator.num_processes} done")
