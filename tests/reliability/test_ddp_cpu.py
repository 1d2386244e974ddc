"""Two-process DDP (gloo, CPU) through the CLI with the ddp.yaml overlay: ranks read disjoint
samples, the contrastive loss spans the global batch, and the distributed evaluation equals
a single-process `validate` of the same checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmpretrain.callbacks.sample_keys import read_sample_keys

REPO_ROOT = Path(__file__).resolve().parents[2]
STEPS = 4


def test_ddp_two_cpu_processes(tiny, image_text_shards, tmp_path):
    run_dir = tmp_path / "ddp"
    shards = [f"--data.init_args.train_shards={image_text_shards['train']}",
              f"--data.init_args.val_shards={image_text_shards['val']}"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mmpretrain", "fit", "-c", str(REPO_ROOT / "configs/trainer/ddp.yaml"),
         "-c", tiny.config, "--trainer.devices=2", f"--trainer.max_steps={STEPS}",
         f"--trainer.val_check_interval={STEPS}", "--trainer.limit_val_batches=null",
         "--trainer.callbacks+=tests.reliability.ddp_probe.GatherProbe",
         f"--trainer.default_root_dir={run_dir}", *shards],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    per_rank = [read_sample_keys(run_dir / "sample_keys" / f"rank{r}.txt") for r in (0, 1)]
    keys = [[k for _, batch in steps for k in batch] for steps in per_rank]
    assert len(keys[0]) == len(keys[1]) == STEPS * 8
    assert not set(keys[0]) & set(keys[1])  # disjoint shards per rank

    probe = json.loads((run_dir / "gather_probe.json").read_text())
    assert probe["global_batch"] == 16
    assert probe["task_loss_rank_mean"] == pytest.approx(probe["global_batch_loss"], rel=1e-5)
    assert abs(probe["local_only_rank_mean"] - probe["global_batch_loss"]) > 1e-3

    distributed = json.loads((run_dir / "metrics.json").read_text())
    single_dir = tmp_path / "single"
    tiny.cli(single_dir, image_text_shards["train"], shards[1], "--trainer.limit_val_batches=null",
             subcommand="validate", ckpt_path=str(run_dir / "checkpoints" / "last.ckpt"))
    single = json.loads((single_dir / "metrics.json").read_text())
    assert distributed["global_step"] == STEPS
    for name in ("zeroshot_top1", "zeroshot_top5", "i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5"):
        assert distributed[name] == pytest.approx(single[name], abs=1e-6), name
