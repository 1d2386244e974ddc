"""`ContinualEvaluation`: task boundaries and evaluations of a continual stream.

Before the first step it evaluates the starting model ("start"); within every task it
probes at `probe_fractions` of the task's steps (the stability-gap dip); at the end of every
task it asks the task module for the weights its method evaluates (`end_task`), evaluates
them, and installs the weights the next task starts from (`begin_task`). Each evaluation is
zero-shot top-1 on every eval set of the datamodule (`eval_sets()`), summarised as A_KA,
A_ZS and GM (`eval/continual.py`), logged as `continual/*` and written to
`RUN_DIR/continual/` (CSV, PNG, markdown, summary.json) by rank 0. The evaluations so far are
callback state, so a resumed run continues the same table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from mmpretrain.eval.continual import (
    RESULTS_DIRNAME,
    Evaluation,
    evaluations_from_state,
    evaluations_to_state,
    summarize,
    write_results,
    zeroshot_top1,
)


class ContinualEvaluation(Callback):
    def __init__(self, probe_fractions: list[float] | None = None, eval_chunk_size: int = 256,
                 results_dirname: str = RESULTS_DIRNAME) -> None:
        """`probe_fractions`: where within each task to evaluate, as fractions of its steps
        (default 0.1, 0.25, 0.5, 0.75; the task end is always evaluated)."""
        fractions = [0.1, 0.25, 0.5, 0.75] if probe_fractions is None else list(probe_fractions)
        if any(not 0.0 < f < 1.0 for f in fractions):
            raise ValueError(f"ContinualEvaluation.probe_fractions must lie in (0, 1), got {fractions}")
        self.probe_fractions = fractions
        self.eval_chunk_size = eval_chunk_size
        self.results_dirname = results_dirname
        self.evaluations: list[Evaluation] = []

    # ---- hooks --------------------------------------------------------------------------------
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.global_step == 0:
            self.evaluations = []
            pl_module.begin_task(0)
            self._evaluate(trainer, pl_module, phase="start", task=0)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        stream = pl_module.stream
        step, steps_per_task = trainer.global_step, stream.steps_per_task
        if step % steps_per_task == 0:
            finished = step // steps_per_task - 1
            pl_module.end_task(finished)
            self._evaluate(trainer, pl_module, phase="end", task=finished)
            if finished + 1 < stream.num_tasks:
                pl_module.begin_task(finished + 1)
        elif step % steps_per_task in self._probe_offsets(steps_per_task):
            self._evaluate(trainer, pl_module, phase="probe", task=step // steps_per_task)

    def _probe_offsets(self, steps_per_task: int) -> set[int]:
        return {round(f * steps_per_task) for f in self.probe_fractions} - {0, steps_per_task}

    # ---- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def _evaluate(self, trainer: Trainer, pl_module: LightningModule, phase: str, task: int) -> None:
        datamodule = trainer.datamodule
        model, device = pl_module.model, pl_module.device
        was_training = model.training
        model.eval()
        evaluation = Evaluation(step=trainer.global_step, task=task, phase=phase)
        for eval_set in datamodule.eval_sets():
            evaluation.accuracy[eval_set.name] = zeroshot_top1(
                lambda x: model.encode_image(x.to(device), normalize=True),
                lambda t: model.encode_text(t.to(device), normalize=True),
                eval_set.images_N3HW, eval_set.labels_N, eval_set.prompts_CTL, self.eval_chunk_size)
        model.train(was_training)
        task_sets = {s.name: s.task for s in datamodule.eval_sets() if s.role == "task"}
        heldout = [s.name for s in datamodule.eval_sets() if s.role == "heldout"]
        summarize(evaluation, task_sets, heldout)
        self.evaluations.append(evaluation)
        for key in ("a_ka", "a_zs", "gm"):
            value = getattr(evaluation, key)
            if value is not None and phase != "start":  # Lightning allows no step logging before step 1
                pl_module.log(f"continual/{key}", value, on_step=True, on_epoch=False, batch_size=1)
        if trainer.is_global_zero:
            write_results(Path(trainer.default_root_dir) / self.results_dirname, self.evaluations,
                          [task.name for task in datamodule.tasks], pl_module.stream.steps_per_task)

    # ---- resume -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"evaluations": evaluations_to_state(self.evaluations)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.evaluations = evaluations_from_state(state_dict["evaluations"])
