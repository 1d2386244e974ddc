"""Sweep specs: expansion into runs, commands, SLURM script, and the shipped specs are valid."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from mmpretrain.cli import run_lightning_cli
from mmpretrain.workflow.sweep_runner import plan_runs, shell_script, slurm_array_script, write_deltas
from mmpretrain.workflow.sweep_spec import (
    deep_merge,
    dotted_to_nested,
    load_sweep_spec,
    parse_sweep_spec,
)

from .conftest import without_pytest_argv

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_SPECS = sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "configs" / "sweeps").glob("*.yaml"))
BASE = ["configs/trainer/cpu.yaml", "configs/exp/clip/quickstart.yaml"]
LR_KEY = "model.init_args.optimizer.init_args.lr"


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # spec paths are relative to the repo root


def test_grid_expands_to_the_cartesian_product():
    spec = parse_sweep_spec({"base": BASE, "grid": {LR_KEY: [1e-3, 3e-3], "data.init_args.batch_size": [32, 64]}},
                            "s.yaml")
    assert [r.name for r in spec.runs] == ["lr=0.001,batch_size=32", "lr=0.001,batch_size=64",
                                          "lr=0.003,batch_size=32", "lr=0.003,batch_size=64"]
    assert spec.runs[1].delta == {"model": {"init_args": {"optimizer": {"init_args": {"lr": 1e-3}}}},
                                  "data": {"init_args": {"batch_size": 64}}}
    assert spec.name == "s" and spec.out_dir == Path("runs/sweeps/s") and spec.validate


def test_variants_times_grid_merge_their_deltas(tmp_path):
    delta_file = tmp_path / "wide.yaml"
    delta_file.write_text(yaml.safe_dump({"data": {"init_args": {"image_size": 96}}}))
    spec = parse_sweep_spec({"base": BASE, "variants": [
        {"name": "base", "delta": {}}, {"name": "wide", "delta": str(delta_file)}],
        "grid": {"data.init_args.batch_size": [8]}})
    assert [r.name for r in spec.runs] == ["base+batch_size=8", "wide+batch_size=8"]
    assert spec.runs[1].delta == {"data": {"init_args": {"image_size": 96, "batch_size": 8}}}


def test_merge_helpers():
    assert dotted_to_nested({"a.b": 1, "a.c": 2, "d": 3}) == {"a": {"b": 1, "c": 2}, "d": 3}
    base = {"a": {"b": 1, "c": {"d": 2}}}
    assert deep_merge(base, {"a": {"c": {"e": 3}}}) == {"a": {"b": 1, "c": {"d": 2, "e": 3}}}
    assert base == {"a": {"b": 1, "c": {"d": 2}}}  # inputs untouched


@pytest.mark.parametrize("raw, message", [
    ({"grid": {LR_KEY: [1]}}, "'base'"),
    ({"base": ["configs/nope.yaml"], "grid": {LR_KEY: [1]}}, "not found"),
    ({"base": BASE}, "give 'variants'"),
    ({"base": BASE, "grid": {LR_KEY: []}}, "non-empty lists"),
    ({"base": BASE, "variants": [{"name": "a", "delta": {}}, {"name": "a", "delta": {}}]}, "unique"),
    ({"base": BASE, "variants": [{"delta": {}}]}, "variants\\[0\\]"),
    ({"base": BASE, "variants": [{"name": "a", "delta": "missing.yaml"}]}, "does not exist"),
    ({"base": BASE, "grid": {LR_KEY: [1]}, "lr": 3}, "unknown keys"),
    ({"base": BASE, "grid": {LR_KEY: [1]}, "args": "--x"}, "'args'"),
])
def test_bad_specs_say_what_is_wrong(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_sweep_spec(raw, "bad.yaml")


def test_commands_stack_the_delta_last_and_own_the_run_dir(tmp_path):
    spec = parse_sweep_spec({"base": BASE, "out_dir": str(tmp_path), "args": ["--trainer.max_steps=5"],
                             "grid": {LR_KEY: [1e-3, 3e-3]}})
    plans = plan_runs(spec, ["--seed_everything=1"], python="PY")
    write_deltas(spec, plans)
    run_dir = tmp_path / "lr=0.003"
    assert plans[1].fit == ["PY", "-m", "mmpretrain", "fit", "-c", BASE[0], "-c", BASE[1],
                            "-c", str(run_dir / "delta.yaml"), "--trainer.max_steps=5", "--seed_everything=1",
                            f"--trainer.default_root_dir={run_dir}"]
    assert plans[1].validate[3] == "validate"
    assert plans[1].validate[-1] == f"--ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"
    written = yaml.safe_load((run_dir / "delta.yaml").read_text())
    assert written == {"model": {"init_args": {"optimizer": {"init_args": {"lr": 3e-3}}}}}
    script = shell_script(spec, plans, python="PY")
    assert script.count(" fit ") == 2 and script.count(" validate ") == 2
    assert script.rstrip().endswith(f"--out {tmp_path / 'report'}")


def test_slurm_script_has_one_array_task_per_run(tmp_path):
    spec = parse_sweep_spec({"base": BASE, "out_dir": str(tmp_path), "validate": False,
                             "grid": {LR_KEY: [1e-4, 1e-3, 1e-2]}}, "lr.yaml")
    plans = plan_runs(spec, python="PY")
    script = slurm_array_script(spec, plans, Path("/repo"), ["--gres=gpu:1"])
    assert "#SBATCH --array=0-2" in script and "#SBATCH --gres=gpu:1" in script
    assert "cd /repo" in script
    for index, plan in enumerate(plans):
        assert f"  {index})  # {plan.name}" in script
    assert " validate " not in script.split("case")[1]  # validate: false
    assert script.count("srun PY -m mmpretrain fit") == 3


@pytest.mark.parametrize("spec_path", SHIPPED_SPECS)
def test_shipped_sweep_specs_instantiate_every_run(spec_path, image_text_shards, tmp_path):
    """Each run of a shipped spec is a valid config stack (LightningCLI builds model and data)."""
    spec = load_sweep_spec(spec_path)
    assert len(spec.runs) >= 2
    spec.out_dir = tmp_path
    plans = plan_runs(spec)
    write_deltas(spec, plans)
    for run, plan in zip(spec.runs, plans):
        args = plan.fit[4:] + [f"--data.init_args.train_shards={image_text_shards['train']}",
                               f"--data.init_args.val_shards={image_text_shards['val']}"]
        with without_pytest_argv():
            cli = run_lightning_cli(args, run=False)
        merged = cli.config.as_dict()
        for key, value in _flat(run.delta):
            node = merged
            for part in key.split("."):
                node = node[part]
            assert node == value, f"{spec_path}: run {run.name}: {key} = {node}, delta says {value}"


def _flat(delta: dict, prefix: str = "") -> list[tuple[str, object]]:
    items = []
    for key, value in delta.items():
        if isinstance(value, dict) and value:
            items += _flat(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def test_shipped_specs_exist():
    assert "configs/sweeps/quickstart_lr.yaml" in SHIPPED_SPECS
    assert os.path.isfile(REPO_ROOT / SHIPPED_SPECS[0])
