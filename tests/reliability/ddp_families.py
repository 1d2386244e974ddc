"""Every model family through the CLI on 2 gloo ranks, in one torchrun launch.

    python -m torch.distributed.run --nproc_per_node 2 tests/reliability/ddp_families.py PLAN.json

PLAN.json: {"out": DIR, "steps": N, "runs": [{"name": ..., "args": [CLI arguments]}, ...]}.
Each rank runs, per entry, `mmpretrain fit -c configs/trainer/ddp.yaml --trainer.accelerator cpu
--trainer.devices 2 ARGS --trainer.max_steps N` in this process (Lightning finds torchrun's
process group and keeps it between runs), then resumes the run's last checkpoint for one
more step. Rank 0 writes DIR/results.json: per run the steps reached, the resumed step and
the seconds taken; a run that raises is recorded with its error and the loop goes on (a rank
whose peer fails in a collective fails too, so both record it).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from mmpretrain.cli import run_lightning_cli  # noqa: E402

DDP_CPU = ["-c", str(REPO_ROOT / "configs/trainer/ddp.yaml"), "--trainer.accelerator=cpu",
           "--trainer.devices=2", "--trainer.precision=32-true"]
# ddp.yaml's checkpointing (last.ckpt is written when max_steps stops the run) without its
# progress bar
TEST_TRAINER = ['--trainer.callbacks=[{"class_path": "mmpretrain.callbacks.AtomicModelCheckpoint", '
                '"init_args": {"save_last": true, "every_n_train_steps": 1000}}]',
                "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
                "--trainer.logger=false", "--trainer.limit_val_batches=0", "--trainer.log_every_n_steps=1"]


def _fit(args: list[str], run_dir: Path, max_steps: int, ckpt_path: str | None = None) -> int:
    ckpt = ["--ckpt_path", ckpt_path] if ckpt_path else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli = run_lightning_cli(["fit", *DDP_CPU, *args, *TEST_TRAINER, f"--trainer.max_steps={max_steps}",
                                 f"--trainer.default_root_dir={run_dir}", *ckpt])
    if cli.trainer.world_size != 2:
        raise RuntimeError(f"expected 2 ranks, the trainer has {cli.trainer.world_size}")
    return cli.trainer.global_step


def run_plan(plan: dict) -> list[dict]:
    out, steps = Path(plan["out"]), plan["steps"]
    results = []
    for run in plan["runs"]:
        run_dir = out / run["name"].replace("/", "_")
        start = time.perf_counter()
        record = {"name": run["name"]}
        try:
            record["last_step"] = _fit(run["args"], run_dir, steps)
            last = run_dir / "checkpoints" / "last.ckpt"
            record["resumed_step"] = _fit(run["args"], run_dir / "resumed", steps + 1, str(last))
        except Exception as exn:  # noqa: BLE001 - record it and go on with the other families
            record["error"] = "".join(traceback.format_exception_only(exn)).strip()[-2000:]
            traceback.print_exc()
        record["seconds"] = round(time.perf_counter() - start, 2)
        results.append(record)
    return results


def main(plan_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text())
    results = run_plan(plan)
    if int(os.environ.get("RANK", "0")) == 0:
        Path(plan["out"], "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(sys.argv[1])
