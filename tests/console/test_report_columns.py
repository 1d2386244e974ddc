"""report.md names differing config keys unambiguously, leaves runtime-only keys out, and
counts steps as metrics.json does."""

from __future__ import annotations

from pathlib import Path

from mmpretrain.workflow.report import last_step, summary_table
from mmpretrain.workflow.run_logs import RunLogs, varied_config_keys

TOWERS = "model.init_args.model.init_args"


def _run(name: str, vision_width: int, text_width: int, verbose: bool, logged_steps: int) -> RunLogs:
    config = {"model": {"init_args": {"model": {"init_args": {
        "vision": {"init_args": {"width": vision_width, "image_size": 32}},
        "text": {"init_args": {"width": text_width}}}}, "verbose": verbose}},
        "trainer": {"enable_progress_bar": verbose, "default_root_dir": f"runs/{name}"}}
    curves = {"train/loss": [(s, 1.0 / (s + 1)) for s in range(logged_steps)]}
    return RunLogs(name=name, run_dir=Path("runs") / name, curves=curves, config=config)


def test_columns_are_distinct_key_paths_without_runtime_keys():
    runs = [_run("a", 64, 32, False, 220), _run("b", 128, 64, True, 220)]
    assert varied_config_keys(runs) == [f"{TOWERS}.text.init_args.width", f"{TOWERS}.vision.init_args.width"]
    header = summary_table(runs).splitlines()[0]
    assert header == "| run | last step | text.width | vision.width | final loss |"


def test_last_step_counts_completed_steps():
    run = _run("a", 64, 32, False, 220)  # training scalars logged at steps 0..219
    assert last_step(run) == 220
    run.final = {"global_step": 220, "zeroshot_top1": 0.5}
    assert last_step(run) == 220
    assert last_step(RunLogs(name="empty", run_dir=Path("x"))) is None
