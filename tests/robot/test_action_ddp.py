"""Two-process validation (gloo, CPU, the ddp.yaml overlay) of an action model: each rank reads
half of the val shards, and the action metrics are computed over both halves — they equal a
single-process `validate` of the same checkpoint, step count included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _cli(subcommand: str, run_dir: Path, shards: dict, *extra: str, overlay: tuple[str, ...] = ()) -> Path:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mmpretrain", subcommand, "-c", str(REPO_ROOT / "configs/trainer/cpu.yaml"), *overlay,
         "-c", str(REPO_ROOT / "configs/exp/robot/cursor_idm.yaml"),
         f"--data.init_args.train_shards={shards['train']}", f"--data.init_args.val_shards={shards['val']}",
         "--data.init_args.train_weights=null", f"--trainer.default_root_dir={run_dir}",
         "--trainer.enable_progress_bar=false", *extra],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return run_dir / "metrics.json"


def test_two_rank_validation_metrics_equal_one_process(trajectory_shards, tmp_path):
    _cli("fit", tmp_path / "train", trajectory_shards, "--trainer.max_steps=3",
         "--trainer.val_check_interval=3", "--trainer.limit_val_batches=1")
    ckpt = f"--ckpt_path={tmp_path / 'train' / 'checkpoints' / 'last.ckpt'}"
    single = json.loads(_cli("validate", tmp_path / "single", trajectory_shards, ckpt).read_text())
    two = json.loads(_cli("validate", tmp_path / "ddp", trajectory_shards, ckpt, "--trainer.accelerator=cpu",
                          "--trainer.devices=2", "--trainer.precision=32-true",
                          overlay=("-c", str(REPO_ROOT / "configs/trainer/ddp.yaml"))).read_text())
    # 16 val windows of 8 steps in two shards; the IDM never scores a window's last step
    assert single["num_steps"] == two["num_steps"] == 16 * 7
    for name, value in single.items():
        if name not in ("stage", "epoch", "global_step"):
            assert two[name] == pytest.approx(value, abs=1e-6), name
