"""Every model family trains on 2 gloo DDP ranks through the CLI (configs/trainer/ddp.yaml on
CPU, `find_unused_parameters: false`), reaches its last step and resumes from its checkpoint.

One torchrun launch runs all families in turn (tests/reliability/ddp_families.py), so the
process start-up and the process group are paid once. The math across ranks (loss and
gradients equal to one process on the concatenated batch) is tested at the loss level:
tests/losses/test_uneven_ranks.py and the two-rank tests beside each loss.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_synthetic
from tests.test_configs import _family_data

REPO_ROOT = Path(__file__).resolve().parents[2]
EXP = "configs/exp"
STEPS = 2
# family -> config stack (an ablation is stacked on its family's quickstart)
FAMILIES = {
    "clip": [f"{EXP}/clip/quickstart.yaml"],
    "siglip": [f"{EXP}/siglip/quickstart.yaml"],
    "coca": [f"{EXP}/clip/quickstart.yaml", f"{EXP}/clip/ablations/coca.yaml"],
    "video/meanp": [f"{EXP}/video/meanp.yaml"],
    "video/space_time": [f"{EXP}/video/space_time.yaml"],
    "video/token_rolling": [f"{EXP}/video/token_rolling.yaml"],
    "interleaved": [f"{EXP}/interleaved/quickstart.yaml"],
    **{f"interleaved/{name}": [f"{EXP}/interleaved/quickstart.yaml", f"{EXP}/interleaved/ablations/{name}.yaml"]
       for name in ("no_contrastive", "padded", "prior_weighting")},
    "continual/replay": [f"{EXP}/continual/quickstart.yaml"],
    "continual/ctp": [f"{EXP}/continual/quickstart.yaml", f"{EXP}/continual/ablations/ctp.yaml"],
    "continual/ema_merge": [f"{EXP}/continual/quickstart.yaml", f"{EXP}/continual/ablations/ema_merge.yaml"],
    "robot/idm": [f"{EXP}/robot/cursor_idm.yaml"],
    "robot/bc": [f"{EXP}/robot/cursor_bc.yaml"],
    "cabs_dm": [f"{EXP}/cabs/cabs_dm.yaml"],
}
# smaller batches per rank than the config test's 8 where the family allows it
SMALL_BATCH = {"clip", "siglip", "coca", "video/meanp", "video/space_time", "video/token_rolling",
               "robot/idm", "robot/bc"}
SHORT_ROWS = ["--data.init_args.batch_size=2", "--data.init_args.sequence_length=128"]


@pytest.fixture(scope="module")
def two_rank_continual_stream(tmp_path_factory) -> dict[str, Path]:
    """The continual stream with 2 shards per eval set: each rank evaluates a disjoint part of
    every eval set in exact mode, which needs a shard per rank."""
    root = tmp_path_factory.mktemp("continual_two_ranks")
    make_synthetic("continual", root, 64, 16, 0, "--pool-samples", "64", "--eval-samples", "32")
    return {"train": root / "pool", "val": root / "heldout", "root": root}


def _plan(request, continual: dict[str, Path], out: Path) -> dict:
    runs = []
    for name, stack in FAMILIES.items():
        args = [a for path in stack for a in ("-c", str(REPO_ROOT / path))]
        if name.startswith("continual/"):
            args += [f"--data.init_args.train_shards={continual['train']}",
                     f"--data.init_args.val_shards={continual['val']}",
                     f"--data.init_args.stream.root={continual['root']}", "--model.init_args.init_from=null",
                     "--data.init_args.num_workers=0", "--data.init_args.batch_size=8"]
        else:
            args += _family_data(stack[0], request)
        if name in SMALL_BATCH:
            args.append("--data.init_args.batch_size=4")
        if name.startswith("interleaved"):
            args += SHORT_ROWS
        runs.append({"name": name, "args": args})
    return {"out": str(out), "steps": STEPS, "runs": runs}


@pytest.fixture(scope="module")
def family_results(request, two_rank_continual_stream, tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("ddp_families")
    plan_path = out / "plan.json"
    plan_path.write_text(json.dumps(_plan(request, two_rank_continual_stream, out)))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(REPO_ROOT / "tests/reliability/ddp_families.py"), str(plan_path)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    results = json.loads((out / "results.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"\n2-rank families: {cpu:.0f} CPU s in all; per family (steps, resumed step, wall s):")
    for r in results:
        print(f"  {r['name']:28s} {r.get('last_step')} {r.get('resumed_step')} {r['seconds']}")
    return {r["name"]: r for r in results}


@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_on_two_ranks_and_resumes(family_results, family):
    result = family_results[family]
    assert "error" not in result, result.get("error")
    assert result["last_step"] == STEPS
    assert result["resumed_step"] == STEPS + 1
