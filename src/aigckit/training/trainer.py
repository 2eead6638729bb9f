"""One Trainer for every family, on Hugging Face Accelerate; the loop stays plain PyTorch."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import DistributedType, broadcast, broadcast_object_list
from rich.console import Console
from torch import Tensor, nn

from ..checkpoint import (
    atomic_directory,
    atomic_write_text,
    list_checkpoints,
    optimizer_state_from_tensors,
    optimizer_state_to_tensors,
    read_training_state,
    save_pretrained,
    save_training_state,
    verify_checkpoint,
)
from ..config import RunConfig, to_dict
from ..data import load_dataset, training_batches
from ..errors import CheckpointError, ConfigError
from ..family import StepOutput, family_for_model
from ..layers import example_seeds
from ..precision import Precision, resolve_precision
from .callbacks import Callbacks, Checkpointer, EMAUpdate, MetricsLogger, ProgressBar, SampleGrids
from .ema import EMA
from .schedule import lr_factor
from .sharding import full_model_state, full_optimizer_state, load_full_optimizer_state

__all__ = ["Trainer", "train", "resolve_model_config"]


def _asked_for(engine: str) -> bool:
    """Whether `accelerate launch` was configured for `engine` ("FSDP" or "DEEPSPEED")."""
    return os.environ.get(f"ACCELERATE_USE_{engine}", "false").lower() == "true"


def resolve_model_config(model_config: Any, dataset: Any) -> Any:
    """Fill the model's null fields from the dataset's model_facts (image size, vocabulary, ...)."""
    updates = {}
    for key, value in dataset.model_facts.items():
        if not hasattr(model_config, key):
            continue
        current = getattr(model_config, key)
        if current is None:
            updates[key] = value
        elif current != value:
            raise ConfigError(f"model.{key}", f"is {current} but the data gives {value}; leave it out (null) "
                                              f"to take it from the data")
    try:
        return dataclasses.replace(model_config, **updates)
    except ConfigError as error:
        raise ConfigError(f"model.{error.key}", str(error).split(": ", 1)[-1]) from None


class Trainer:
    """Trains any registered family from a RunConfig into a run directory; resumable at any step."""

    def __init__(self, config: RunConfig, run_dir: str | Path, *, resume: bool = False,
                 show_progress: bool = True, extra_callbacks: list[Any] | None = None) -> None:
        self.run_dir = Path(run_dir)
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise CheckpointError(f"--run-dir {self.run_dir} is a file; give a folder (new, or a run to --resume)")
        checkpoints = list_checkpoints(self.run_dir)
        if resume and not checkpoints:
            raise CheckpointError(f"{self.run_dir} has no complete checkpoint to resume; drop --resume to start anew")
        if not resume and checkpoints:
            raise CheckpointError(f"{self.run_dir} already holds a run; pass --resume to continue it or choose "
                                  f"another --run-dir")
        tc = config.train
        # Precision is handled by our own autocast rather than Accelerator(mixed_precision=...): accelerate
        # keeps that setting in a process-wide singleton, and a second run in one process may want another.
        # cpu=True on a machine without an accelerator is what makes accelerate use gloo under torchrun.
        if _asked_for("DEEPSPEED"):  # checked first: Accelerate itself fails on it without the package
            raise ConfigError("accelerate config", "asks for DeepSpeed, which aigckit's Trainer does not run; use "
                                                   "FSDP (configs/accelerate/fsdp.yaml) or DDP (configs/accelerate/ddp.yaml)")
        self.accelerator = Accelerator(cpu=not torch.accelerator.is_available())
        self.family = family_for_model(config.model.name)
        dataset = load_dataset(config.data, "train")
        model_config = resolve_model_config(config.model, dataset)  # the data and the model fit: now say more
        self.precision = self._resolve_precision(tc.precision)
        self.autocast_dtype = self.precision.autocast_dtype
        self.config = dataclasses.replace(config, model=model_config,
                                          train=dataclasses.replace(tc, precision=self.precision.name))
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        self.examples_per_step = tc.batch_size * tc.grad_accum_steps * world
        self.tokens_per_example = getattr(dataset, "block_size", None)  # text data: tokens/s is logged too

        torch.manual_seed(tc.seed)  # identical initial weights on every process
        self.model: nn.Module = self.family.build(self.config.model).to(self.accelerator.device)
        self.sharded = self._check_engine()  # FSDP: each process holds a shard of every weight
        self.optimizers = self.family.optimizers(self.model, self.config.model)
        flops_per_example = (self.family.training_flops_per_example(self.model)
                             if self.family.supports("training_flops") else None)
        self.flops_per_step = flops_per_example * self.examples_per_step if flops_per_example else None  # for MFU
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group.setdefault("base_lr", group["lr"])
        self.ema = EMA(self.model, tc.ema_decay) if tc.use_ema else None
        torch.manual_seed(tc.seed * 1000 + rank + 1)  # a different noise stream on each process

        self.step = 0
        self.elapsed_before = 0.0  # seconds of training before this fit (from the checkpoint resumed)
        self.elapsed = 0.0  # seconds of training so far, all fits together: what train.max_minutes limits
        self.stopping = False  # set on the last step: max_steps reached or time budget spent
        self.latest_logs: dict[str, float] = {}
        self._log_sums: dict[str, Tensor] = {}
        self._log_counts: dict[str, int] = {}
        optimizer_states = self._load_checkpoint(checkpoints[-1]) if resume else None
        # each trained network through Accelerate's engine (DDP, FSDP): the wrapped ones run the training forward
        # passes; self.model holds the same weights (DDP) or is itself sharded (FSDP)
        self.nets = self._prepare_networks()
        if optimizer_states is not None:  # after prepare: FSDP gives the optimizers their sharded parameters
            self._load_optimizer_states(optimizer_states)
        if self.accelerator.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if hasattr(dataset, "save_to"):  # e.g. a text dataset keeps its tokenizer and token ids in the run
                dataset.save_to(self.run_dir, resuming=resume)
            # the precision actually used is recorded, with what was asked for and why
            atomic_write_text(self.run_dir / "config.yaml", f"# train.{self.precision.describe()}\n" +
                              yaml.safe_dump(to_dict(self.config), sort_keys=False, allow_unicode=True))
        # the input pipeline, from the first batch of the step to run (batch k is the same whatever the start);
        # after save_to, so that worker processes read a text run's memory-mapped token ids
        self.batches = training_batches(dataset, batch_size=tc.batch_size, seed=tc.seed, rank=rank, world_size=world,
                                        micro_batches=tc.grad_accum_steps, start=self.step * tc.grad_accum_steps,
                                        device=self.accelerator.device, flip=config.data.flip,
                                        num_workers=config.data.num_workers)
        callbacks = [EMAUpdate(), MetricsLogger(), SampleGrids(), Checkpointer()]
        callbacks += [ProgressBar()] if show_progress else []
        self.callbacks = Callbacks(callbacks + (extra_callbacks or []))

    def _resolve_precision(self, requested: str) -> Precision:
        """The main process chooses (its probe is cached per machine) and tells the others; printed once."""
        choice = [resolve_precision(requested, self.accelerator.device) if self.accelerator.is_main_process
                  else None]
        if self.accelerator.num_processes > 1:
            broadcast_object_list(choice)
        precision = choice[0]
        if self.accelerator.is_main_process:
            console = Console(stderr=True, highlight=False, soft_wrap=True)
            console.print(precision.describe())
            if precision.warning:
                console.print(f"[bold yellow]warning:[/] {precision.warning}")
        return precision

    def _check_engine(self) -> bool:
        """Whether the networks are sharded (FSDP); an engine asked for that cannot run here raises in one line."""
        sharded = self.accelerator.distributed_type == DistributedType.FSDP
        if sharded and len(self.family.networks(self.model)) > 1:
            raise ConfigError("accelerate config", f"asks for FSDP, which shards families with one network; "
                                                   f"{self.family.name} models train with DDP (configs/accelerate/ddp.yaml)")
        if _asked_for("FSDP") and not sharded:
            raise ConfigError("accelerate config", f"asks for FSDP, which Accelerate runs only on GPUs (this process "
                                                   f"runs on {self.accelerator.device.type}); on CPUs train "
                                                   f"data-parallel with aigckit train --num-processes N")
        if sharded and self.config.train.use_ema:
            raise ConfigError("train.use_ema", "an average of sharded (FSDP) weights is not kept; set "
                                               "train.use_ema=false")
        return sharded

    def _prepare_networks(self) -> dict[str, nn.Module]:
        """The family's networks, each through accelerator.prepare when several processes train (FSDP with its
        optimizer, whose parameters it replaces by their shards)."""
        if self.accelerator.num_processes > 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                                      for m in self.model.modules()):
            if self.accelerator.device.type == "cuda":  # batch statistics of the whole global batch
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            elif self.accelerator.is_main_process:
                Console(stderr=True, highlight=False).print(
                    "note: batch norm statistics are per process (SyncBatchNorm needs GPUs); the running averages "
                    "are those of process 0")
        networks = self.family.networks(self.model)
        if self.accelerator.num_processes == 1:
            return networks
        if self.sharded:  # the optimizer is changed in place (its parameters become the shards); its wrapper unused
            return {name: self.accelerator.prepare(net, self.optimizers[name])[0] for name, net in networks.items()}
        return {name: self.accelerator.prepare(net) for name, net in networks.items()}

    # ---------------------------------------------------------------- the loop
    def fit(self) -> None:
        """Train from self.step to train.max_steps (or until train.max_minutes of training in all)."""
        tc = self.config.train
        started = time.monotonic()
        time_spent = self._time_spent(started)  # fraction of train.max_minutes used, a resumed run's included
        self.model.train()
        self.callbacks.call("on_fit_start", self)
        try:
            for step in range(self.step, tc.max_steps):
                # with a time budget the LR schedule runs on whichever is further along, steps or time, so that
                # the decay completes when time runs out first
                self._set_learning_rates(max(step, int(time_spent * tc.max_steps)))
                self._train_step(step)
                self.step = step + 1
                time_spent = self._time_spent(started)
                self.stopping = self.step == tc.max_steps or time_spent >= 1.0
                self.callbacks.call("on_step_end", self)
                if self.stopping:
                    break
        finally:
            self._share_buffers()
            self.callbacks.call("on_fit_end", self)

    def _train_step(self, step: int) -> None:
        """One optimizer update per yield of the family's training_step, over every micro-batch.

        One training_step runs per micro-batch, advanced in lockstep: the k-th yield of every micro-batch belongs
        to the same optimizer, so a GAN's D update sees all micro-batches before G's starts. Each micro-batch's
        loss is backpropagated before the next micro-batch's forward pass, so only one graph is alive at a time.
        """
        micro_batches = [self._micro_batch(step, i) for i in range(self.config.train.grad_accum_steps)]
        streams = [self._under_autocast(self.family.training_step(self.model, b, step, self.nets))
                   for b in micro_batches]
        last = len(streams) - 1
        while True:
            for i, stream in enumerate(streams):
                # gradients are synchronised across processes in the last micro-batch's backward pass only
                with self._gradient_sync(enabled=i == last):
                    output = next(stream, None)
                    this = output.optimizer if output is not None else None  # None: the step is over
                    if i == 0:
                        name = this
                    elif this != name:
                        raise RuntimeError(f"{self.family.name}.training_step yielded different optimizers for "
                                           f"different micro-batches; its updates must not depend on the data")
                    if output is not None:
                        optimizer = self.optimizers[name]
                        params = [p for group in optimizer.param_groups for p in group["params"]]
                        self._backward(output, params)
            if name is None:
                return
            self._optimizer_step(name, optimizer, params)

    def _share_buffers(self) -> None:
        """Give every process process 0's buffers (batch norm's running averages), as DDP does before each
        forward pass, so that all processes end with the model the checkpoint holds."""
        if self.accelerator.num_processes > 1:
            for buffer in self.model.buffers():
                broadcast(buffer, from_process=0)

    def _micro_batch(self, step: int, index: int) -> dict[str, Tensor]:
        """Micro-batch `index` of `step` for this process, with the seed of each example's training noise.

        The seeds are numbered by the example's place among all examples of the step (micro-batch, then process),
        which is its place in the data too: N processes and M micro-batches draw what one process at N x M draws.
        """
        tc = self.config.train
        batch = next(self.batches)  # batch step * grad_accum_steps + index: the pipeline reads them in order
        first = (index * self.accelerator.num_processes + self.accelerator.process_index) * tc.batch_size
        batch["seeds"] = example_seeds(tc.seed, step, first, tc.batch_size)
        return batch

    def _gradient_sync(self, *, enabled: bool) -> contextlib.AbstractContextManager:
        """Accelerate's no_sync on every wrapped network unless `enabled` (a no-op for a single process)."""
        stack = contextlib.ExitStack()
        if not enabled and self.accelerator.num_processes > 1:
            for net in self.nets.values():
                stack.enter_context(self.accelerator.no_sync(net))
        return stack

    def _time_spent(self, started: float) -> float:
        """Fraction of train.max_minutes used, this fit and earlier ones, equal on every process (0 without a
        budget); updates self.elapsed."""
        elapsed = torch.tensor(self.elapsed_before + time.monotonic() - started, device=self.accelerator.device)
        if self.accelerator.num_processes > 1:  # every process must use the same LR and stop at the same step
            elapsed = self.accelerator.reduce(elapsed, reduction="max")
        self.elapsed = float(elapsed.item())
        return self.elapsed / (self.config.train.max_minutes * 60) if self.config.train.max_minutes else 0.0

    def _under_autocast(self, outputs: Iterator[StepOutput]) -> Iterator[StepOutput]:
        # forward passes run under autocast, backward passes outside it, as PyTorch advises
        device_type = self.accelerator.device.type
        while True:
            with torch.autocast(device_type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                output = next(outputs, None)
            if output is None:
                return
            yield output

    def _backward(self, output: StepOutput, params: list[Tensor]) -> None:
        micro_batches = self.config.train.grad_accum_steps
        # inputs=params: a generator loss must not leave gradients in the discriminator. FSDP's sharded parameters
        # are not in the graph (their gathered copies are), so there the one network takes every gradient.
        self.accelerator.backward(output.loss / micro_batches, inputs=None if self.sharded else params)
        self._accumulate_logs(output.logs, micro_batches)

    def _optimizer_step(self, name: str, optimizer: torch.optim.Optimizer, params: list[Tensor]) -> None:
        if self.config.train.grad_clip is not None:
            norm = self.accelerator.clip_grad_norm_(params, self.config.train.grad_clip)
            self._accumulate_logs({f"grad_norm_{name}": norm}, 1)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def _set_learning_rates(self, step: int) -> None:
        tc = self.config.train
        factor = lr_factor(step, warmup_steps=tc.warmup_steps, max_steps=tc.max_steps, schedule=tc.lr_schedule,
                           floor=tc.min_lr_fraction)
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
        self._lr = factor

    # ---------------------------------------------------------------- logs
    def _accumulate_logs(self, logs: dict[str, Tensor | float], divisor: int) -> None:
        for key, value in logs.items():
            value = torch.as_tensor(value).detach().float().cpu() / divisor
            self._log_sums[key] = self._log_sums.get(key, 0) + value
            self._log_counts[key] = self._log_counts.get(key, 0) + 1 / divisor

    def pop_logs(self) -> dict[str, float]:
        """Means of everything logged since the last call, plus the learning-rate multiplier."""
        means = {k: float(self._log_sums[k] / self._log_counts[k]) for k in self._log_sums}
        self._log_sums, self._log_counts = {}, {}
        return {**means, "lr_factor": self._lr}

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        """Write checkpoints/step-NNNNNN atomically (main process), with every process's RNG state."""
        path = self.run_dir / "checkpoints" / f"step-{self.step:06d}"
        rng = self.accelerator.gather(torch.get_rng_state()[None].to(self.accelerator.device)).cpu()
        device_rng = self._device_rng()
        if device_rng is not None:
            device_rng = self.accelerator.gather(device_rng[None].to(self.accelerator.device)).cpu()
        model = self.whole_model(ema=False)  # under FSDP: gathered from the shards by every process
        optimizer_states = self._optimizer_states()
        if self.accelerator.is_main_process:
            tensors: dict[str, Tensor] = {f"rng.rank{r}": rng[r] for r in range(rng.shape[0])}
            if device_rng is not None:
                tensors.update({f"rng_{self.accelerator.device.type}.rank{r}": device_rng[r]
                                for r in range(device_rng.shape[0])})
            optimizers = {}
            for name, state in optimizer_states.items():
                optimizer_tensors, optimizers[name] = optimizer_state_to_tensors(name, state)
                tensors.update({f"optimizer.{k}": v for k, v in optimizer_tensors.items()})
            with atomic_directory(path) as tmp:
                save_training_state(tmp, tensors, {"step": self.step, "elapsed_seconds": self.elapsed,
                                                   "optimizers": optimizers, "num_processes": rng.shape[0]})
                save_pretrained(tmp, model, self.family, ema=self.ema.model if self.ema else None)
            self._prune_checkpoints()
        self.accelerator.wait_for_everyone()
        return path

    def whole_model(self, *, ema: bool = True) -> nn.Module | None:
        """The model to sample from or save: the EMA's (if kept and `ema`) or the live one. Under FSDP a whole copy
        gathered from the shards, on process 0 only (None on the others), and every process must call."""
        if not self.sharded:
            return self.ema.model if ema and self.ema is not None else self.model
        states = {name: full_model_state(net) for name, net in self.nets.items()}
        if not self.accelerator.is_main_process:
            return None
        with torch.random.fork_rng(devices=[]):  # building draws initial weights: keep the training stream
            whole = self.family.build(self.config.model)
        for name, net in self.family.networks(whole).items():
            net.load_state_dict(states[name])
        return whole.to(self.accelerator.device)

    def _optimizer_states(self) -> dict[str, dict[str, Any]]:
        """Each optimizer's whole state dict (under FSDP gathered on process 0; every process must call)."""
        if not self.sharded:
            return {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()}
        return {name: full_optimizer_state(self.nets[name], optimizer) for name, optimizer in self.optimizers.items()}

    def _load_optimizer_states(self, states: dict[str, dict[str, Any]]) -> None:
        for name, optimizer in self.optimizers.items():
            if self.sharded:
                load_full_optimizer_state(self.nets[name], optimizer, states[name])
            else:
                optimizer.load_state_dict(states[name])

    def _prune_checkpoints(self) -> None:
        keep = self.config.train.keep_checkpoints
        if keep:
            for old in list_checkpoints(self.run_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)

    def _load_checkpoint(self, path: Path) -> dict[str, dict[str, Any]]:
        """Load weights, random states, step and time from `path` (before the networks are prepared); returns
        the optimizers' state dicts, which are loaded after."""
        manifest = verify_checkpoint(path)
        if manifest["model"] != to_dict(self.config.model):
            raise ConfigError("model", f"differs from the model saved in {path}; resume with the run's own "
                                       f"config ({self.run_dir / 'config.yaml'})")
        self.family.load_weights(self.model, path, "model")
        if self.ema is not None:
            has_ema = any(name.startswith(("ema.", "ema/")) for name in manifest["files"])
            self.family.load_weights(self.ema.model, path, "ema" if has_ema else "model")
        tensors, meta = read_training_state(path)
        optimizer_states = {name: optimizer_state_from_tensors(name, {k[len("optimizer."):]: v for k, v in tensors.items()
                                                                      if k.startswith(f"optimizer.{name}.")},
                                                               meta["optimizers"][name])
                            for name in self.optimizers}
        if meta["num_processes"] != self.accelerator.num_processes:
            raise CheckpointError(f"{path} was written by {meta['num_processes']} processes; resume with "
                                  f"--num-processes {meta['num_processes']}")
        rank = self.accelerator.process_index
        torch.set_rng_state(tensors[f"rng.rank{rank}"])
        device_rng = tensors.get(f"rng_{self.accelerator.device.type}.rank{rank}")
        if self._device_rng() is not None:
            if device_rng is None:
                raise CheckpointError(f"{path} holds no {self.accelerator.device.type} random state (it was written on "
                                      f"another kind of device); resume it there, or start a new run")
            torch.get_device_module(self.accelerator.device.type).set_rng_state(device_rng, self.accelerator.device)
        self.step = int(meta["step"])
        if "elapsed_seconds" not in meta:
            raise CheckpointError(f"{path} was written by an older aigckit that did not record the training time; "
                                  f"start a new run")
        self.elapsed_before = self.elapsed = float(meta["elapsed_seconds"])
        return optimizer_states

    def _device_rng(self) -> Tensor | None:
        """The random state of the accelerator (CUDA, ...) this process trains on; None on a CPU."""
        device = self.accelerator.device
        return None if device.type == "cpu" else torch.get_device_module(device.type).get_rng_state(device)


def train(config: RunConfig, run_dir: str | Path, *, resume: bool = False, show_progress: bool = True) -> Path:
    """Train `config` into `run_dir` (resuming from its latest checkpoint if asked); returns the run dir."""
    trainer = Trainer(config, run_dir, resume=resume, show_progress=show_progress)
    trainer.fit()
    return trainer.run_dir
