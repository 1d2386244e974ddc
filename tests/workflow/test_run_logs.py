"""Run-directory reading: CSV + TensorBoard versions merged, eval-only logs left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mmpretrain.workflow.run_logs import (
    flatten_config,
    load_run,
    read_curves,
    varied_config_keys,
)


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join("" if v is None else str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def make_run(root: Path, lr: float, losses: list[float], zeroshot: float) -> Path:
    """A run dir laid out as the CLI writes it: fit CSV (+ val rows), a validate CSV, metrics.json."""
    run = root
    header = ["epoch", "step", "train/loss", "train/lr", "val/zeroshot_top1"]
    rows = [[0, step, loss, lr, None] for step, loss in enumerate(losses)]
    rows.append([0, len(losses) - 1, None, None, zeroshot / 2])
    write_csv(run / "logs" / "version_0" / "metrics.csv", header, rows)
    (run / "logs" / "version_0" / "config.yaml").write_text(yaml.safe_dump(
        {"model": {"init_args": {"optimizer": {"init_args": {"lr": lr}}}},
         "trainer": {"default_root_dir": str(run), "max_steps": len(losses)}}))
    # `validate` after training: its own version folder, metrics at step 0
    write_csv(run / "logs" / "version_2" / "metrics.csv", ["epoch", "step", "val/zeroshot_top1"],
              [[0, 0, zeroshot]])
    (run / "metrics.json").write_text(json.dumps({"zeroshot_top1": zeroshot, "chance_top1": 0.1,
                                                  "i2t_r1": zeroshot / 3, "global_step": 0}))
    return run


def test_csv_versions_merge_and_eval_only_logs_are_skipped(tmp_path):
    run = make_run(tmp_path / "a", 1e-3, [3.0, 2.5, 2.0], 0.4)
    # a resumed fit: new version folder, overlapping step 2 (the later value wins), then step 3
    write_csv(run / "logs" / "version_4" / "metrics.csv", ["epoch", "step", "train/loss"],
              [[0, 2, 1.9], [0, 3, 1.5]])
    curves = read_curves(run)
    assert curves["train/loss"] == [(0, 3.0), (1, 2.5), (2, 1.9), (3, 1.5)]
    # the validate log's step-0 point is not a curve point; the fit's step-2 validation is
    assert curves["val/zeroshot_top1"] == [(2, 0.2)]


def test_tensorboard_events_are_read_when_there_is_no_csv(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "logs" / "version_1"))
    for step, value in enumerate([4.0, 3.0, 2.0]):
        writer.add_scalar("train/loss", value, step)
    writer.close()
    run = load_run(tmp_path)
    assert run.curves["train/loss"] == [(0, 4.0), (1, 3.0), (2, 2.0)]
    assert run.max_step == 2 and run.last("train/loss") == 2.0


def test_load_run_reads_final_metrics_and_config(tmp_path):
    run = load_run(make_run(tmp_path / "b", 3e-4, [2.0] * 10 + [1.0] * 10, 0.5), name="lr_small")
    assert run.name == "lr_small"
    assert run.final["zeroshot_top1"] == 0.5
    assert run.config["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 3e-4
    assert run.tail_mean("train/loss", 0.1) == pytest.approx(1.0)
    assert run.tail_mean("train/loss", 1.0) == pytest.approx(1.5)


def test_varied_config_keys_name_the_ablation_axis(tmp_path):
    runs = [load_run(make_run(tmp_path / name, lr, [1.0, 0.5], 0.3))
            for name, lr in (("a", 1e-3), ("b", 3e-3))]
    # default_root_dir differs too, but it is where a run lives, not an ablation choice
    assert varied_config_keys(runs) == ["model.init_args.optimizer.init_args.lr"]
    assert flatten_config({"a": {"b": 1, "c": [1, 2]}, "d": {}}) == {"a.b": 1, "a.c": [1, 2], "d": {}}


def test_not_a_run_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_run(tmp_path / "missing")
    with pytest.raises(ValueError, match="no training logs"):
        load_run(tmp_path)
    write_csv(tmp_path / "logs" / "version_0" / "metrics.csv", ["epoch", "step", "train/loss"], [[0, 0, "abc"]])
    with pytest.raises(ValueError, match="train/loss"):
        load_run(tmp_path)
