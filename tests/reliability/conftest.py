"""Helpers for the reliability tests: a tiny CLIP config run through the real CLI in-process."""

from __future__ import annotations

import os
import signal
import warnings
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from mmpretrain.callbacks.sample_keys import read_sample_keys
from mmpretrain.cli import MMPretrainCLI, run_lightning_cli

TINY_CLIP = str(Path(__file__).with_name("tiny_clip.yaml"))


class SignalAtStep(L.Callback):
    """Sends `signum` to this process after optimizer step `step` (as a cluster scheduler would)."""

    def __init__(self, step: int, signum: int = signal.SIGTERM) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def tiny_cli(run_dir: Path, train_shards: Path | str, *overrides: str, subcommand: str | None = "fit",
             extra_callbacks: list[L.Callback] = (), ckpt_path: str | None = None) -> MMPretrainCLI:
    """Run `mmpretrain fit -c tiny_clip.yaml ...` in this process. With `extra_callbacks` the CLI
    is built with run=False and `trainer.fit` is called as the CLI's fit subcommand would."""
    args = ["-c", TINY_CLIP, f"--data.init_args.train_shards={train_shards}",
            f"--trainer.default_root_dir={run_dir}", *overrides]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not extra_callbacks and subcommand is not None:
            ckpt = ["--ckpt_path", ckpt_path] if ckpt_path else []
            return run_lightning_cli([subcommand, *args, *ckpt])
        cli = run_lightning_cli(args, run=False)
        cli.trainer.callbacks.extend(extra_callbacks)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
        return cli


def logged_keys(run_dir: Path, rank: int = 0) -> list[tuple[int, list[str]]]:
    return read_sample_keys(Path(run_dir) / "sample_keys" / f"rank{rank}.txt")


@pytest.fixture(autouse=True)
def _restore_torch_determinism():
    """`trainer.deterministic=true` flips a process-wide torch flag; put it back after each test."""
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


@pytest.fixture
def tiny() -> SimpleNamespace:
    return SimpleNamespace(cli=tiny_cli, keys=logged_keys, SignalAtStep=SignalAtStep, config=TINY_CLIP)
