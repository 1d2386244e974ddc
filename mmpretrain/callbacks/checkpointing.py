"""Crash-safe checkpoint callbacks.

`AtomicModelCheckpoint`: Lightning's `ModelCheckpoint` whose `last.ckpt` link (with
`save_last: link`) is swapped in by an atomic rename instead of delete-then-create, so a kill
between the two never leaves a run without `last.ckpt`. Full saves are made atomic by
`mmpretrain.plugins.AtomicCheckpointIO`, which the CLI installs by default.

`PreemptionCheckpoint`: on SIGTERM (preemption, `scancel`, Kubernetes eviction) Lightning
finishes the current batch on every rank and raises `SIGTERMException`; this callback then
writes `last.ckpt` where `fit --ckpt_path last` finds it, and the process exits with status 0.
Under SLURM with requeue, Lightning's own SIGUSR1 handler additionally writes
`hpc_ckpt_N.ckpt` and requeues the job (see the README).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from mmpretrain.plugins.atomic_checkpoint_io import replace_atomically


class AtomicModelCheckpoint(ModelCheckpoint):
    """`enable_version_counter` defaults to False: a resumed run that reaches a step a killed run
    had already saved overwrites that file (same step, newer state) and keeps writing `last.ckpt`
    instead of `last-v1.ckpt`, so `--ckpt_path last` keeps meaning the newest state even when the
    resumed run's checkpoint settings differ."""

    def __init__(self, *args: Any, enable_version_counter: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, enable_version_counter=enable_version_counter, **kwargs)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """A run that stops at `max_steps` between two `every_n_train_steps` saves still leaves
        its final state in `last.ckpt`."""
        super().on_train_end(trainer, pl_module)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    @staticmethod
    def _link_checkpoint(trainer: Trainer, filepath: str, linkpath: str) -> None:
        if trainer.is_global_zero and os.path.abspath(filepath) != os.path.abspath(linkpath):
            if os.path.isdir(linkpath) and not os.path.islink(linkpath):
                shutil.rmtree(linkpath)  # a sharded (directory) checkpoint cannot be renamed over
            temp_link = f"{linkpath}.link-{os.getpid()}"
            try:
                if os.path.lexists(temp_link):
                    os.remove(temp_link)
                os.symlink(os.path.relpath(filepath, os.path.dirname(linkpath)), temp_link)
                os.replace(temp_link, linkpath)
            except OSError:
                with open(filepath, "rb") as source:
                    replace_atomically(linkpath, lambda f: shutil.copyfileobj(source, f))
        trainer.strategy.barrier()


def last_checkpoint_path(trainer: Trainer) -> Path:
    """Where `fit --ckpt_path last` looks: the first ModelCheckpoint's dirpath/last.ckpt."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath is not None:
            name = callback.CHECKPOINT_NAME_LAST + callback.FILE_EXTENSION
            return Path(callback.dirpath) / name
    return Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"


class PreemptionCheckpoint(Callback):
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        path = last_checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath == str(path.parent):
                callback.last_model_path = str(path)
        rank_zero_info(f"SIGTERM: saved {path} at step {trainer.global_step}; exiting. "
                       "Continue with `mmpretrain fit ... --ckpt_path last`.")
