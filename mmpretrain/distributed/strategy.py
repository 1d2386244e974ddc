"""`FSDP2Strategy`: Lightning's `ModelParallelStrategy` with mmpretrain's sharding plans.

Lightning's FSDP2 path (`ModelParallelStrategy`) expects every LightningModule to shard itself
in `configure_model`; here the strategy applies the family plan of `fsdp2.py` to the task's
`model` (and to any other trained child: a view head, a loss with parameters), on a 1-D
data-parallel mesh over all ranks. Checkpoints are sharded directories published atomically
and read without unpickling arbitrary objects (`sharded_checkpoint.py`); `mmpretrain export`
consolidates them. Works with NCCL on GPUs and with gloo on CPU (`--trainer.accelerator cpu`).

    mmpretrain fit -c configs/trainer/fsdp.yaml -c configs/exp/clip/vit_b32.yaml
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.types import _PATH
from lightning.fabric.utilities.optimizer import _optimizers_to_device
from lightning.pytorch.strategies import ModelParallelStrategy
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.constants import default_pg_timeout

from mmpretrain.distributed.fsdp2 import apply_fsdp2
from mmpretrain.distributed.scalars import lifted_scalar_names
from mmpretrain.distributed.sharded_checkpoint import (
    SCALARS_KEY,
    is_sharded_checkpoint,
    load_sharded,
    save_sharded,
)


def _trained_children(task: nn.Module) -> list[tuple[str, nn.Module]]:
    """The task's direct children that hold trainable parameters (`model` first)."""
    children = [(name, child) for name, child in task.named_children()
                if any(p.requires_grad for p in child.parameters())]
    return sorted(children, key=lambda item: item[0] != "model")


class FSDP2Strategy(ModelParallelStrategy):
    def __init__(self, reshard_after_forward: bool | None = None,
                 save_distributed_checkpoint: bool = True,
                 process_group_backend: str | None = None,
                 timeout: timedelta | None = default_pg_timeout) -> None:
        """`reshard_after_forward`: free each block's gathered parameters after its forward
        (None/True: ZeRO-3 memory; False: ZeRO-2, keeps them until backward, less traffic).
        `save_distributed_checkpoint`: sharded checkpoint directories (True) or one full file
        assembled on rank 0 (False)."""
        super().__init__(data_parallel_size="auto", tensor_parallel_size=1,
                         save_distributed_checkpoint=save_distributed_checkpoint,
                         process_group_backend=process_group_backend, timeout=timeout)
        self._reshard_after_forward = reshard_after_forward
        self._sharded_children: list[str] = []

    def setup_environment(self) -> None:
        # one data-parallel dimension over every rank of every node (no tensor parallelism)
        self._data_parallel_size = self.num_nodes * self.num_processes
        self._tensor_parallel_size = 1
        super().setup_environment()

    def setup(self, trainer: pl.Trainer) -> None:
        assert self.model is not None and self.accelerator is not None
        self.accelerator.setup(trainer)
        task = self.lightning_module
        task.to(self.root_device)
        mesh = self.device_mesh["data_parallel"]
        self._sharded_children = []
        for name, child in _trained_children(task):
            apply_fsdp2(child, mesh=mesh, reshard_after_forward=self._reshard_after_forward)
            self._sharded_children.append(name)
        self.model = self.precision_plugin.convert_module(self.model)
        self.barrier()
        if trainer.state.fn == TrainerFn.FITTING:
            self.setup_optimizers(trainer)
        self.setup_precision_plugin()
        if trainer.state.fn == TrainerFn.FITTING:
            _optimizers_to_device(self.optimizers, self.root_device)

    def _lifted_scalars(self) -> list[str]:
        task = self.lightning_module
        return [f"{name}.{scalar}" for name in self._sharded_children
                for scalar in lifted_scalar_names(getattr(task, name))]

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath: _PATH,
                        storage_options: Any | None = None) -> None:
        if not self._save_distributed_checkpoint:
            return super().save_checkpoint(checkpoint, filepath, storage_options)
        if storage_options is not None:
            raise TypeError("FSDP2Strategy.save_checkpoint: storage_options is not supported")
        state = {"state_dict": checkpoint.pop("state_dict")}
        state.update({f"optimizer_{i}": s for i, s in enumerate(checkpoint.pop("optimizer_states", []))})
        checkpoint[SCALARS_KEY] = self._lifted_scalars()
        save_sharded(state, checkpoint, filepath, rank=self.global_rank, broadcast=self.broadcast,
                     barrier=self.barrier)

    def load_checkpoint(self, checkpoint_path: _PATH, weights_only: bool | None = None) -> dict[str, Any]:
        path = Path(self.broadcast(checkpoint_path))
        if not is_sharded_checkpoint(path):
            return super().load_checkpoint(path, weights_only=weights_only)
        assert self.model is not None
        optimizers = [getattr(o, "_optimizer", o) for o in self.optimizers]
        state = {"state_dict": get_model_state_dict(self.model)}
        state.update({f"optimizer_{i}": get_optimizer_state_dict(self.model, o)
                      for i, o in enumerate(optimizers)})
        meta = load_sharded(state, path)
        set_model_state_dict(self.model, state["state_dict"],
                             options=StateDictOptions(strict=self.lightning_module.strict_loading))
        for i, optimizer in enumerate(optimizers):
            set_optimizer_state_dict(self.model, optimizer, state[f"optimizer_{i}"])
        return meta

    def remove_checkpoint(self, filepath: _PATH) -> None:
        """A sharded checkpoint is a link and its versioned directory: remove both."""
        path = Path(filepath)
        if self.is_global_zero and path.is_symlink():
            target = Path(os.path.realpath(path))
            path.unlink()
            if target.is_dir():
                shutil.rmtree(target)
            return
        super().remove_checkpoint(filepath)
