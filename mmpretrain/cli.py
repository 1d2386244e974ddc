"""`mmpretrain` console script: LightningCLI (fit/validate/test/predict) plus extra commands.

A run is a stack of YAML files (`-c trainer.yaml -c exp.yaml -c ablation.yaml`); later files
override earlier ones. The run directory is `trainer.default_root_dir`: checkpoints go to
`RUN_DIR/checkpoints`, CSV and TensorBoard logs to `RUN_DIR/logs`, and every validate/test
writes `RUN_DIR/metrics.json`.
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
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from mmpretrain.callbacks import (
    AtomicModelCheckpoint,
    DataStatsLogger,
    MetricsFileWriter,
    PreemptionCheckpoint,
    SelectionStatsLogger,
)
from mmpretrain.commands import available_commands, command_help, run_command
from mmpretrain.console.config_errors import readable_errors, split_debug_flag
from mmpretrain.console.model_summary import ParameterSummary
from mmpretrain.console.quiet import silence_third_party_tips
from mmpretrain.console.run_banner import RunBanner
from mmpretrain.plugins import AtomicCheckpointIO, load_checkpoint_file
from mmpretrain.resources import resolve_packaged_configs

DEFAULT_RUN_DIR = "runs/default"

# Our IterableDataset's __len__ is per-rank and worker-aware (ShardStream), so Lightning's
# generic caution does not apply; the stream also carries its own resume state.
warnings.filterwarnings("ignore", message=r".*IterableDataset.*has `__len__` defined.*")
warnings.filterwarnings("ignore", message=r".*not resumable.*")
# Lightning 2.6 against torch 2.14 warns about its own pytree use on every run
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


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

    def after_validate(self) -> None:
        self._print_metrics_file()

    def after_test(self) -> None:
        self._print_metrics_file()

    def _print_metrics_file(self) -> None:
        if not self.trainer.is_global_zero:
            return
        writer = next((c for c in self.trainer.callbacks if isinstance(c, MetricsFileWriter)), None)
        if writer is None or writer.last_path is None:
            return
        metrics = json.loads(writer.last_path.read_text())
        print(format_evaluation(metrics))
        print(f"metrics written to {writer.last_path}")


def format_evaluation(metrics: dict[str, Any]) -> str:
    """Human summary of the headline metrics (zero-shot vs chance, retrieval)."""
    lines = ["", "Final evaluation"]
    if "zeroshot_top1" in metrics:
        chance = metrics.get("chance_top1", float("nan"))
        ratio = metrics["zeroshot_top1"] / chance if chance else float("nan")
        lines.append(
            f"  zero-shot top-1 {100 * metrics['zeroshot_top1']:.1f}%  top-5 "
            f"{100 * metrics.get('zeroshot_top5', float('nan')):.1f}%  (chance {100 * chance:.1f}%,"
            f" {ratio:.1f}x chance)")
    for direction, label in (("i2t", "image->text"), ("t2i", "text->image")):
        if f"{direction}_r1" in metrics:
            lines.append(
                f"  {label:12s} R@1 {100 * metrics[f'{direction}_r1']:.1f}%  R@5 "
                f"{100 * metrics[f'{direction}_r5']:.1f}%  R@10 {100 * metrics[f'{direction}_r10']:.1f}%")
    return "\n".join(lines)


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


def main(argv: list[str] | None = None) -> None:
    args, debug = split_debug_flag(list(sys.argv[1:] if argv is None else argv))
    silence_third_party_tips()
    with readable_errors(debug):
        args = resolve_packaged_configs(args)
        if argv is None:  # LightningCLI reads sys.argv itself
            sys.argv[1:] = args
        _main(args, None if argv is None else args)


def _main(args: list[str], argv: list[str] | None) -> None:
    extra = available_commands()
    if args and args[0] in extra:
        sys.exit(run_command(args[0], args[1:]))
    if args and args[0] in ("-h", "--help") and extra:
        print(f"extra commands (besides fit/validate/test/predict):\n{command_help()}\n")
    # LightningCLI reads sys.argv itself; passing args as well only triggers a warning.
    run_lightning_cli(argv)


if __name__ == "__main__":
    main()
