"""Write the final evaluation metrics of a run to `RUN_DIR/metrics.json` (flat keys)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

METRICS_FILENAME = "metrics.json"


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON via a temp file + rename so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def flat_eval_metrics(callback_metrics: dict, prefixes: tuple[str, ...] = ("val/", "test/")) -> dict:
    """`val/zeroshot_top1` -> `zeroshot_top1`; non-evaluation metrics are dropped."""
    flat = {}
    for name, value in callback_metrics.items():
        for prefix in prefixes:
            if name.startswith(prefix):
                flat[name[len(prefix):]] = float(value)
    return flat


class MetricsFileWriter(Callback):
    """After every validation/test epoch, rank 0 writes the evaluation metrics to the run dir."""

    def __init__(self, filename: str = METRICS_FILENAME) -> None:
        self.filename = filename
        self.last_path: Path | None = None
        self._checkpoint_step: int | None = None

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        # validate/test restore weights but not the loop state: report the checkpoint's step
        self._checkpoint_step = checkpoint.get("global_step")

    def _write(self, trainer: Trainer, stage: str) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = flat_eval_metrics(trainer.callback_metrics)
        if not metrics:
            return
        step = trainer.global_step
        if stage in ("validate", "test") and self._checkpoint_step is not None:
            step = self._checkpoint_step
        payload = {**metrics, "stage": stage, "global_step": step, "epoch": trainer.current_epoch}
        self.last_path = Path(trainer.default_root_dir) / self.filename
        write_json_atomic(self.last_path, payload)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, trainer.state.fn.value if trainer.state.fn else "validate")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, "test")
