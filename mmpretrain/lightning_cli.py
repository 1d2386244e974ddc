"""LightningCLI of `mmpretrain fit|validate|test|predict` (the console script is `cli.py`).

A run is a stack of YAML files (`-c trainer.yaml -c exp.yaml -c ablation.yaml`); later files
override earlier ones. The run directory is `trainer.default_root_dir`: checkpoints go to
`RUN_DIR/checkpoints`, CSV and TensorBoard logs to `RUN_DIR/logs`, and every validate/test
writes `RUN_DIR/metrics.json`. Every fit/validate/test ends with a table of its final metrics.
Flags are exact keys: argparse's prefix matching is off (`--trainer.max_step` is an error).
"""

from __future__ import annotations

import json
import pickle
import sys
import warnings
from pathlib import Path
from typing import Any

from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ModelSummary, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from mmpretrain.callbacks import (
    AtomicModelCheckpoint,
    DataStatsLogger,
    MetricsFileWriter,
    PreemptionCheckpoint,
    SelectionStatsLogger,
)
from mmpretrain.console.model_summary import ParameterSummary
from mmpretrain.console.run_banner import RunBanner
from mmpretrain.eval.continual import RESULTS_DIRNAME
from mmpretrain.exact_keys import ExactKeyArgumentParser
from mmpretrain.plugins import AtomicCheckpointIO, load_checkpoint_file
from mmpretrain.prerequisites import check_init_from
from mmpretrain.workflow.final_metrics import format_final_metrics

DEFAULT_RUN_DIR = "runs/default"

# Our IterableDataset's __len__ is per-rank and worker-aware (ShardStream), so Lightning's
# generic caution does not apply; the stream also carries its own resume state.
warnings.filterwarnings("ignore", message=r".*IterableDataset.*has `__len__` defined.*")
warnings.filterwarnings("ignore", message=r".*not resumable.*")
# Lightning 2.6 against torch 2.14 warns about its own pytree use on every run
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
# A rerun in the same run dir is the normal case (resume, validate after fit, sweeps); the
# checkpoint writes are atomic, so an existing last.ckpt is replaced whole, never mixed.
warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")


def _with_run_dir_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Point loggers and checkpoints at the run dir unless the config chose them explicitly;
    checkpoints are written atomically and SIGTERM saves `last.ckpt` before exiting."""
    run_dir = Path(config.get("default_root_dir") or DEFAULT_RUN_DIR)
    config["default_root_dir"] = str(run_dir)
    if config.get("logger") in (None, True):
        csv_logger = CSVLogger(save_dir=str(run_dir), name="logs")
        # one version folder per invocation holds the CSV, TensorBoard events and config.yaml
        config["logger"] = [
            csv_logger,
            TensorBoardLogger(save_dir=str(run_dir), name="logs", version=csv_logger.version),
        ]
    loggers = config["logger"] if isinstance(config.get("logger"), (list, tuple)) else [config.get("logger")]
    for logger in loggers:  # configs/logger/*.yaml: mmpretrain.loggers point at the run dir
        if hasattr(logger, "bind_run_dir"):
            logger.bind_run_dir(run_dir)
    callbacks: list[Callback] = list(config.get("callbacks") or [])
    if config.get("enable_progress_bar") is False:
        # A trainer overlay may list a progress bar; turning bars off must not be an error.
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    if config.get("enable_checkpointing", True) is not False:
        checkpoints = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
        if not checkpoints:
            callbacks.append(AtomicModelCheckpoint(save_last=True))
            checkpoints = callbacks[-1:]
        for checkpoint in checkpoints:
            if checkpoint.dirpath is None:
                checkpoint.dirpath = str(run_dir / "checkpoints")
    for infrastructure in (MetricsFileWriter, DataStatsLogger, SelectionStatsLogger,
                           PreemptionCheckpoint, RunBanner):
        if not any(isinstance(c, infrastructure) for c in callbacks):
            callbacks.append(infrastructure())
    if config.get("enable_model_summary") is not False and not any(
            isinstance(c, ModelSummary) for c in callbacks):
        callbacks.append(ParameterSummary())
    config["callbacks"] = callbacks
    plugins = config.get("plugins")
    plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    config["plugins"] = plugins
    return config


class MMPretrainCLI(LightningCLI):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # exact keys: a prefix such as `--trainer.max_step` must not mean `--trainer.max_steps`
        kwargs.setdefault("parser_class", ExactKeyArgumentParser)
        super().__init__(*args, **kwargs)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """`args` given from Python replaces the command line (which may be another program's,
        as in `mmpretrain rollout ...` or pytest): no warning about both being present."""
        if args is None:
            return super().parse_arguments(parser, args)
        argv, sys.argv = sys.argv, sys.argv[:1]
        try:
            super().parse_arguments(parser, args)
        finally:
            sys.argv = argv

    def _parse_ckpt_path(self) -> None:
        """LightningCLI reads `--ckpt_path` (weights_only) for saved hyperparameters; a file that
        is not a safe checkpoint gets the same clear refusal as the trainer's own load."""
        try:
            super()._parse_ckpt_path()
        except (pickle.UnpicklingError, RuntimeError, EOFError) as exn:
            ckpt_path = self.config[self.config.subcommand].get("ckpt_path")
            load_checkpoint_file(ckpt_path)  # raises the clear ValueError
            raise exn

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        return super()._instantiate_trainer(_with_run_dir_defaults(config), callbacks)

    def _run_subcommand(self, subcommand: str) -> None:
        check_init_from(self.model)
        try:
            super()._run_subcommand(subcommand)
        except RuntimeError as exn:
            ckpt_path = self.config_init[subcommand].get("ckpt_path")
            if ckpt_path and Path(ckpt_path).is_file() and "Error(s) in loading state_dict" in str(exn):
                raise_checkpoint_mismatch(self.model, ckpt_path)
            raise

    def after_fit(self) -> None:
        self._print_final_metrics("fit")

    def after_validate(self) -> None:
        self._print_final_metrics("validate")

    def after_test(self) -> None:
        self._print_final_metrics("test")

    def _print_final_metrics(self, stage: str) -> None:
        trainer = self.trainer
        if not trainer.is_global_zero:
            return
        writer = next((c for c in trainer.callbacks if isinstance(c, MetricsFileWriter)), None)
        path = writer.last_path if writer is not None else None
        if path is not None:
            metrics = json.loads(path.read_text())
            step = metrics.get("global_step")
        else:
            metrics, step = {}, trainer.global_step
        continual_dir = Path(trainer.default_root_dir) / RESULTS_DIRNAME
        print(format_final_metrics(stage, metrics, step, path,
                                   continual_dir if continual_dir.is_dir() else None,
                                   empty_reason=_why_no_metrics(trainer, stage)), flush=True)


def _why_no_metrics(trainer: Trainer, stage: str) -> str:
    if stage == "fit" and not trainer.limit_val_batches:
        reason = "validation is off (trainer.limit_val_batches=0)"
    else:
        reason = "no validation/test set produced metrics (is data.init_args.val_shards set?)"
    loss = trainer.callback_metrics.get("train/loss")
    return reason + (f"; last train/loss {float(loss):.4g}" if loss is not None and stage == "fit" else "")


def raise_checkpoint_mismatch(model: LightningModule, ckpt_path: str) -> None:
    """The trainer's strict load failed: the same counted summary `init_from` gives."""
    from mmpretrain.models.state_dict_check import check_state_dict_fits

    state = load_checkpoint_file(ckpt_path)
    incoming = state.get("state_dict", state) if isinstance(state, dict) else {}
    check_state_dict_fits(model.state_dict(), incoming, str(ckpt_path), type(model).__name__)


def format_evaluation(metrics: dict[str, Any]) -> str:
    """The final-metrics table of an evaluation's `metrics.json` content."""
    return format_final_metrics(str(metrics.get("stage", "evaluation")), metrics, metrics.get("global_step"))


def run_lightning_cli(args: list[str] | None = None, run: bool = True) -> MMPretrainCLI:
    return MMPretrainCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )
