"""Fixtures for the workflow tests: a tiny trained run (a few CPU steps) and its data."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml

from mmpretrain.cli import run_lightning_cli

REPO_ROOT = Path(__file__).resolve().parents[2]

# a CLIP small enough that a few steps + validation take seconds on a shared CPU
TINY_CLIP_DELTA = {
    "model": {"init_args": {"model": {"init_args": {
        "vision": {"init_args": {"width": 32, "layers": 1, "heads": 2, "output_dim": 32}},
        "text": {"init_args": {"width": 32, "layers": 1, "heads": 2, "output_dim": 32}},
    }}}},
}


def tiny_run_args(shards: dict[str, Path], run_dir: Path, delta_path: Path, steps: int) -> list[str]:
    return ["-c", str(REPO_ROOT / "configs/trainer/cpu.yaml"),
            "-c", str(REPO_ROOT / "configs/exp/clip/quickstart.yaml"), "-c", str(delta_path),
            f"--trainer.default_root_dir={run_dir}", f"--trainer.max_steps={steps}",
            f"--trainer.val_check_interval={steps}", "--trainer.log_every_n_steps=1",
            f"--data.init_args.train_shards={shards['train']}", f"--data.init_args.val_shards={shards['val']}",
            "--data.init_args.num_workers=0", "--data.init_args.batch_size=16"]


@contextlib.contextmanager
def without_pytest_argv():
    """LightningCLI warns when it is given args while sys.argv holds pytest's own arguments."""
    with mock.patch.object(sys, "argv", sys.argv[:1]):
        yield


@pytest.fixture(scope="session")
def tiny_clip_delta(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny_clip") / "tiny_clip.yaml"
    path.write_text(yaml.safe_dump(TINY_CLIP_DELTA))
    return path


@pytest.fixture(scope="session")
def tiny_run(image_text_shards, tiny_clip_delta, tmp_path_factory) -> Path:
    """RUN_DIR of a 4-step tiny CLIP fit (checkpoint, CSV + TensorBoard logs, metrics.json)."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    with without_pytest_argv():
        run_lightning_cli(["fit", *tiny_run_args(image_text_shards, run_dir, tiny_clip_delta, 4)])
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    return run_dir


CONTINUAL_METHODS = {"finetune": [], "ema_merge": ["configs/exp/continual/ablations/ema_merge.yaml"]}


@pytest.fixture(scope="session")
def tiny_continual_runs(continual_stream_shards, tmp_path_factory) -> list[Path]:
    """Run directories of two tiny continual streams (3 tasks x 3 steps): fine-tuning and
    EMA-merge, with their `continual/` results."""
    shards, runs = continual_stream_shards, []
    for name, deltas in CONTINUAL_METHODS.items():
        run_dir = tmp_path_factory.mktemp("continual") / name
        configs = ["configs/trainer/cpu.yaml", "configs/exp/continual/quickstart.yaml", *deltas,
                   "tests/tasks/continual_tiny.yaml"]
        with without_pytest_argv():
            run_lightning_cli(["fit", *(a for c in configs for a in ("-c", str(REPO_ROOT / c))),
                               f"--trainer.default_root_dir={run_dir}",
                               f"--data.init_args.train_shards={shards['train']}",
                               f"--data.init_args.val_shards={shards['val']}",
                               f"--data.init_args.stream.root={shards['root']}"])
        assert (run_dir / "continual" / "evaluations.csv").is_file()
        runs.append(run_dir)
    return runs
