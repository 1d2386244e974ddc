"""configs/logger/*.yaml build their loggers inside the run dir; W&B (offline) and MLflow (file
store) write their run folders there without any network."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mmpretrain.cli import run_lightning_cli

REPO_ROOT = Path(__file__).resolve().parents[2]
LOGGER_CONFIGS = sorted(p.name for p in (REPO_ROOT / "configs" / "logger").glob("*.yaml"))
BASE = ["-c", str(REPO_ROOT / "configs/trainer/cpu.yaml"), "-c", str(REPO_ROOT / "configs/exp/clip/quickstart.yaml")]


@pytest.fixture(autouse=True)
def _no_pytest_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["mmpretrain"])


def _trainer(logger_config: str, shards: dict[str, Path], run_dir: Path):
    cli = run_lightning_cli(
        [*BASE, "-c", str(REPO_ROOT / "configs" / "logger" / logger_config),
         f"--data.init_args.train_shards={shards['train']}", f"--data.init_args.val_shards={shards['val']}",
         f"--trainer.default_root_dir={run_dir}"], run=False)
    return cli.trainer


def test_every_logger_overlay_is_tested():
    assert LOGGER_CONFIGS == ["csv.yaml", "mlflow.yaml", "tensorboard.yaml", "wandb.yaml"]


@pytest.mark.parametrize("logger_config", ["csv.yaml", "tensorboard.yaml"])
def test_file_loggers_write_under_the_run_dir(logger_config, image_text_shards, tmp_path):
    trainer = _trainer(logger_config, image_text_shards, tmp_path)
    for logger in trainer.loggers:
        logger.log_metrics({"train/loss": 1.5}, step=0)
        logger.finalize("success")
        assert Path(logger.log_dir).is_relative_to(tmp_path / "logs"), logger.log_dir
    csv_file = Path(trainer.loggers[0].log_dir) / "metrics.csv"
    assert csv_file.read_text().splitlines()[1].endswith("1.5")
    if logger_config == "tensorboard.yaml":
        assert list(Path(trainer.loggers[1].log_dir).glob("events.out.tfevents.*"))


def test_wandb_offline_writes_its_run_folder(image_text_shards, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    trainer = _trainer("wandb.yaml", image_text_shards, tmp_path)
    wandb_logger = trainer.loggers[1]
    wandb_logger.log_metrics({"train/loss": 2.5}, step=0)
    wandb_logger.experiment.finish()
    (run_folder,) = (tmp_path / "logs" / "wandb").glob("offline-run-*")
    assert list(run_folder.glob("run-*.wandb"))


def test_mlflow_file_store_under_the_run_dir(image_text_shards, tmp_path):
    trainer = _trainer("mlflow.yaml", image_text_shards, tmp_path)
    mlflow_logger = trainer.loggers[1]
    mlflow_logger.log_metrics({"train_loss": 3.5}, step=0)
    mlflow_logger.finalize("success")
    (metric_file,) = (tmp_path / "logs" / "mlruns").glob("*/*/metrics/train_loss")
    assert metric_file.read_text().split()[1] == "3.5"
