"""`StepProgressBar`: Lightning's rich bar, readable for step-based runs on an 80-column console.

Lightning's bar writes "Epoch 0/-2" when `max_epochs` is unlimited (-1, the step-based runs
here), and its metrics column, squeezed beside a 40-character bar, cuts names such as
`train/samples_per_second` to `train/samples_per_…`. This bar shows "Epoch 0", a
20-character bar, and metric names in full, without the `train/` prefix every bar metric shares (and without Lightning's `v_num`).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import RichProgressBar

_BAR_WIDTH = 20


class StepProgressBar(RichProgressBar):
    def _get_train_description(self, current_epoch: int) -> str:
        max_epochs = self.trainer.max_epochs
        description = f"Epoch {current_epoch}"
        if max_epochs is not None and max_epochs >= 0:
            description += f"/{max_epochs - 1}"
        if len(self.validation_description) > len(description):
            # same padding as Lightning: the train and validation bars do not flicker
            description = f"{description:{len(self.validation_description)}}"
        return description

    def configure_columns(self, trainer: Trainer) -> list:
        columns = super().configure_columns(trainer)
        for column in columns:
            if hasattr(column, "bar_width"):
                column.bar_width = _BAR_WIDTH
        return columns

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return {name.removeprefix("train/"): value for name, value in items.items()}
