"""Record the key of every sample a training step consumed (one file per rank).

`RUN_DIR/sample_keys/rank{R}.txt` gets one line per optimizer step: `global_step<TAB>key key ...`,
flushed as it goes. It answers "exactly which samples did the model see, in which order",
which is how the exact-resume and no-sample-lost guarantees are audited. Lines written after
the checkpoint a run later resumed from are repeated by the resumed run (that work is redone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from lightning.pytorch import Callback, LightningModule, Trainer


class SampleKeyLogger(Callback):
    def __init__(self, dirname: str = "sample_keys", key_field: str = "key") -> None:
        self.dirname, self.key_field = dirname, key_field
        self._file: TextIO | None = None
        self._step_keys: list[str] | None = None

    def path(self, trainer: Trainer) -> Path:
        return Path(trainer.default_root_dir) / self.dirname / f"rank{trainer.global_rank}.txt"

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        path = self.path(trainer)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any,
                             batch_idx: int) -> None:
        keys = batch.get(self.key_field) if isinstance(batch, dict) else None
        self._step_keys = None if keys is None else [str(k) for k in keys]

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._file is None or self._step_keys is None:
            return
        self._file.write(f"{trainer.global_step}\t{' '.join(self._step_keys)}\n")
        self._file.flush()

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_sample_keys(path: str | Path) -> list[tuple[int, list[str]]]:
    """(global_step, keys) per logged step; a line cut by a kill is ignored."""
    steps = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        step, sep, keys = line.partition("\t")
        if sep and step.isdigit():
            steps.append((int(step), keys.split()))
    return steps
