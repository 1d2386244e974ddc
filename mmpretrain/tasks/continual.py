"""`ContinualTask`: contrastive training over a whole task stream (one `fit`), with the
method options of continual pretraining as config deltas.

- `peft` (`continual.peft.TrainableParameters`): full fine-tuning, LoRA, LayerNorm/bias-only
  or locked towers; applied in `setup`, after `init_from` loaded the starting weights (so
  adapters wrap the pretrained weights) and before a `--ckpt_path` resume restores them.
  With LoRA, `merged.ckpt` (adapters folded in, open_clip layout) is written at the end of
  training for `mmpretrain export`.
- `merging` (`continual.merging.WeightMerging`): EMA-/ZS-/FT-merge at task boundaries.
- `ctp`: CTP (compatible momentum contrast + topology preservation): a momentum model and a
  frozen reference copy of the weights at each task start are submodules (so they are in the
  checkpoint), the momentum queue is a buffer that every rank fills with the momentum keys
  of all ranks (kept out of DDP's buffer broadcast).
- `ewc` (`continual.ewc.EWC`): the classic diagonal-Fisher baseline, consolidated at task ends.

Task boundaries are driven by `callbacks.continual.ContinualEvaluation` (added automatically
when the trainer has none): `begin_task(t)` before task t trains, `end_task(t)` after it,
which puts the weights to evaluate in place, and `begin_task(t + 1)` then installs the
weights the next task starts from. The merge state is saved in every checkpoint.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback
from torch import nn

from mmpretrain.callbacks.continual import ContinualEvaluation
from mmpretrain.continual.ctp import (
    MomentumQueue,
    ctp_momentum_update,
    exclude_from_ddp_broadcast,
    momentum_contrast_loss,
    topology_preservation_loss,
)
from mmpretrain.continual.ewc import EWC
from mmpretrain.continual.merging import WeightMerging
from mmpretrain.continual.peft import TrainableParameters
from mmpretrain.continual.stream import TaskStream
from mmpretrain.tasks.contrastive import ContrastiveTask

MERGING_KEY = "continual_merging"
EWC_KEY = "continual_ewc"
MERGED_CHECKPOINT = "merged.ckpt"


class ContinualTask(ContrastiveTask):
    def __init__(
        self,
        *args: Any,
        peft: TrainableParameters | None = None,
        merging: WeightMerging | None = None,
        ctp: bool = False,
        ctp_queue_size: int = 1024,
        ctp_tau: float = 0.07,
        ctp_momentum_weight: float = 1.0,
        ctp_topology_weight: float = 1.0,
        ewc: EWC | None = None,
        **kwargs: Any,
    ) -> None:
        """All `ContrastiveTask` arguments plus the method: `peft`, `merging`, `ctp` (with its
        queue size, topology temperature and the weights of its two extra losses) and `ewc`
        (diagonal-Fisher penalty towards the weights at each task's end)."""
        super().__init__(*args, **kwargs)
        if ctp and self.grad_cache_chunks != 1:
            raise ValueError("ContinualTask: ctp needs grad_cache_chunks == 1 (its momentum update "
                             "follows each optimizer step)")
        self.peft = peft
        self.merging = merging
        self.ewc = ewc
        self.ctp = ctp
        self.ctp_tau, self.ctp_queue_size = ctp_tau, ctp_queue_size
        self.ctp_momentum_weight, self.ctp_topology_weight = ctp_momentum_weight, ctp_topology_weight
        self.momentum_model: nn.Module | None = None
        self.reference_model: nn.Module | None = None
        self.ctp_queue: MomentumQueue | None = None
        self._peft_applied = False
        self._next_start: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ set-up
    @property
    def stream(self) -> TaskStream:
        stream = getattr(self.trainer.datamodule, "stream", None) if self.trainer is not None else None
        if not isinstance(stream, TaskStream):
            raise ValueError("ContinualTask needs a datamodule with a task stream "
                             "(data.class_path: mmpretrain.continual.datamodule.ContinualDataModule)")
        return stream

    @property
    def current_task(self) -> int:
        return self.stream.task_at_step(self.global_step)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.peft is not None and not self._peft_applied:
            self.peft.apply(self.model)
            self._peft_applied = True
        if self.ctp and self.momentum_model is None:
            self.momentum_model = copy.deepcopy(self.model).requires_grad_(False)
            self.reference_model = copy.deepcopy(self.model).requires_grad_(False)
            self.ctp_queue = MomentumQueue(self.model.text.output_dim, self.ctp_queue_size)
            exclude_from_ddp_broadcast(self, self.ctp_queue)

    def configure_callbacks(self) -> list[Callback]:
        if any(isinstance(c, ContinualEvaluation) for c in self.trainer.callbacks):
            return []
        return [ContinualEvaluation()]

    def configure_optimizers(self):
        configured = super().configure_optimizers()
        scheduler = configured["lr_scheduler"]["scheduler"] if isinstance(configured, dict) else None
        if scheduler is not None and hasattr(scheduler, "set_steps_per_task"):
            own = scheduler.steps_per_task
            if own is not None and own != self.stream.steps_per_task:
                raise ValueError(f"lr_scheduler.init_args.steps_per_task={own} but the stream has "
                                 f"steps_per_task={self.stream.steps_per_task}; leave it unset (null)")
            scheduler.set_steps_per_task(self.stream.steps_per_task)
        return configured

    def on_fit_start(self) -> None:
        max_steps, total = self.trainer.max_steps, self.stream.total_steps
        if not self.trainer.fast_dev_run and not 0 < max_steps <= total:
            raise ValueError(f"trainer.max_steps={max_steps}: a continual stream of {self.stream.num_tasks} "
                             f"tasks x {self.stream.steps_per_task} steps needs 0 < max_steps <= {total}")

    # ---------------------------------------------------------- task boundaries
    def begin_task(self, task: int) -> None:
        """Before task `task` trains: install its starting weights and reset CTP's models."""
        if self._next_start is not None:
            self.model.load_state_dict(self._next_start)
            self._next_start = None
        elif task == 0 and self.merging is not None:
            self.merging.start(self.model.state_dict())
        if self.ctp:
            self.reference_model.load_state_dict(self.model.state_dict())
            if task > 0:  # CTP: theta_m restarts from the task's reference weights
                self.momentum_model.load_state_dict(self.model.state_dict())

    def end_task(self, task: int) -> None:
        """After task `task` trained: put the weights the method evaluates in place."""
        if self.ewc is not None:  # anchored at the trained weights, before any merge
            self.ewc.consolidate(self.model)
        if self.merging is None:
            return
        eval_state, self._next_start = self.merging.task_end(self.model.state_dict())
        self.model.load_state_dict(eval_state)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.merging is not None:
            checkpoint[MERGING_KEY] = self.merging.state_dict()
        if self.ewc is not None:
            checkpoint[EWC_KEY] = self.ewc.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.merging is not None and MERGING_KEY in checkpoint:
            self.merging.load_state_dict(checkpoint[MERGING_KEY])
        if self.ewc is not None and EWC_KEY in checkpoint:
            self.ewc.load_state_dict(checkpoint[EWC_KEY])

    def on_train_end(self) -> None:
        if self.peft is not None and self.peft.mode == "lora":
            self.peft.merge(self.model)
            if self.ctp:  # the momentum / reference copies carry adapters too
                self.peft.merge(self.momentum_model)
                self.peft.merge(self.reference_model)
            self.trainer.save_checkpoint(Path(self.trainer.default_root_dir) / "checkpoints" / MERGED_CHECKPOINT,
                                         weights_only=True)

    # ---------------------------------------------------------------- training
    def encode(self, batch: dict) -> dict[str, torch.Tensor | None]:
        out = super().encode(batch)
        if self.ctp:
            with torch.no_grad():
                out["ctp_reference"] = self.reference_model(batch[self.input_key], batch["text"])
                out["ctp_momentum"] = self.momentum_model(batch[self.input_key], batch["text"])
        return out

    def objective(self, out: dict[str, Any]) -> torch.Tensor:
        loss = super().objective(out)
        if self.ewc is not None:
            loss = loss + self.ewc.penalty(self.model)
        if not self.ctp:
            return loss
        img_BD, txt_BD = out["image_features"], out["text_features"]
        reference, momentum = out["ctp_reference"], out["ctp_momentum"]
        queue_img_QD, queue_txt_QD = self.ctp_queue.features()
        momentum_loss = momentum_contrast_loss(img_BD, txt_BD, momentum["image_features"], momentum["text_features"],
                                               queue_img_QD, queue_txt_QD, out["logit_scale"])
        topology_loss = topology_preservation_loss(img_BD, txt_BD, reference["image_features"],
                                                   reference["text_features"], self.ctp_tau)
        self.ctp_queue.enqueue_from_all_ranks(momentum["image_features"], momentum["text_features"])
        batch_size = img_BD.shape[0]
        self.log("train/ctp_momentum_loss", momentum_loss.detach(), batch_size=batch_size)
        self.log("train/ctp_topology_loss", topology_loss.detach(), batch_size=batch_size)
        return loss + self.ctp_momentum_weight * momentum_loss + self.ctp_topology_weight * topology_loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        self.log("train/task", float(self.current_task), batch_size=batch[self.input_key].shape[0])
        return loss

    def on_after_backward(self) -> None:
        if self.ewc is not None:  # the Fisher sees the task loss's gradient, not the penalty's
            self.ewc.accumulate(self.model, penalty_in_grad=True)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        if self.ctp:
            # task 1: theta_m <- 0.995 theta_m + 0.005 theta; later: 0.9 / 0.05 / 0.05 with theta_ref
            reference = self.reference_model if self.current_task > 0 else None
            ctp_momentum_update(self.momentum_model, self.model, reference)
