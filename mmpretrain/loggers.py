"""Lightning loggers that write into the run directory (`trainer.default_root_dir`).

The overlays in configs/logger/ select them; without `save_dir` each one is pointed at the
run dir when the trainer is built (`bind_run_dir`), so a run's CSV, TensorBoard, W&B and
MLflow files all live under RUN_DIR/logs. W&B and MLflow are optional extras.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger

from mmpretrain.extras import require

LOGS = "logs"
_UNBOUND = "runs/default"  # replaced by the run dir unless save_dir was given


class RunDirCSVLogger(CSVLogger):
    def __init__(self, save_dir: str | None = None, name: str = LOGS, version: int | str | None = None,
                 flush_logs_every_n_steps: int = 100) -> None:
        super().__init__(save_dir or _UNBOUND, name=name, version=version,
                         flush_logs_every_n_steps=flush_logs_every_n_steps)
        self._bind = save_dir is None

    def bind_run_dir(self, run_dir: Path) -> None:
        if self._bind:
            self._root_dir = self._save_dir = str(run_dir)


class RunDirTensorBoardLogger(TensorBoardLogger):
    def __init__(self, save_dir: str | None = None, name: str = LOGS, version: int | str | None = None,
                 log_graph: bool = False, default_hp_metric: bool = False) -> None:
        super().__init__(save_dir or _UNBOUND, name=name, version=version, log_graph=log_graph,
                         default_hp_metric=default_hp_metric)
        self._bind = save_dir is None

    def bind_run_dir(self, run_dir: Path) -> None:
        if self._bind:
            self._root_dir = str(run_dir)


class RunDirWandbLogger(WandbLogger):
    """W&B run files under RUN_DIR/logs/wandb; `offline: true` needs no account or network."""

    def __init__(self, project: str = "mmpretrain", name: str | None = None, save_dir: str | None = None,
                 offline: bool = False, log_model: bool = False, tags: list[str] | None = None,
                 **wandb_init: Any) -> None:
        require("wandb", feature="the W&B logger")
        super().__init__(project=project, name=name, save_dir=save_dir or _UNBOUND, offline=offline,
                         log_model=log_model, tags=tags, **wandb_init)
        self._bind = save_dir is None

    def bind_run_dir(self, run_dir: Path) -> None:
        if self._bind:
            folder = Path(run_dir) / LOGS
            folder.mkdir(parents=True, exist_ok=True)
            self._save_dir = self._wandb_init["dir"] = str(folder)


class RunDirMLFlowLogger(MLFlowLogger):
    """An MLflow file store at RUN_DIR/logs/mlruns unless `tracking_uri` names a server."""

    def __init__(self, experiment_name: str = "mmpretrain", run_name: str | None = None,
                 tracking_uri: str | None = None, save_dir: str | None = None,
                 tags: dict[str, Any] | None = None, log_model: bool = False) -> None:
        require("mlflow", feature="the MLflow logger")
        if tracking_uri is None:
            # MLflow 3 keeps the file store (our offline default) behind this switch
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        super().__init__(experiment_name=experiment_name, run_name=run_name, tracking_uri=tracking_uri,
                         save_dir=save_dir or f"{_UNBOUND}/{LOGS}/mlruns", tags=tags, log_model=log_model)
        self._bind = tracking_uri is None and save_dir is None

    def bind_run_dir(self, run_dir: Path) -> None:
        if self._bind:
            from mlflow.tracking import MlflowClient

            store = (Path(run_dir) / LOGS / "mlruns").resolve()
            self._save_dir = str(store)
            self._tracking_uri = store.as_uri()
            self._mlflow_client = MlflowClient(self._tracking_uri)
