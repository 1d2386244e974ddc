"""`mmpretrain sweep` runs: the runner's bookkeeping (fake interpreter), and a real 3-run
ablation on CPU through the CLI ending in a report."""

from __future__ import annotations

import stat
from pathlib import Path

from mmpretrain.commands import sweep as sweep_command
from mmpretrain.workflow.run_logs import load_run
from mmpretrain.workflow.sweep_runner import plan_runs, run_plans, write_deltas
from mmpretrain.workflow.sweep_spec import parse_sweep_spec

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE = [str(REPO_ROOT / "configs/trainer/cpu.yaml"), str(REPO_ROOT / "configs/exp/clip/quickstart.yaml")]


def fake_python(tmp_path: Path) -> str:
    """An 'interpreter' that records each call and fails `fit` for a run named `broken`."""
    script = tmp_path / "fakepy"
    script.write_text(f"#!/bin/sh\necho \"$3 $*\" >> {tmp_path / 'calls.txt'}\n"
                      "case \"$*\" in *broken*) [ \"$3\" = fit ] && exit 3;; esac\nexit 0\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_runner_runs_fit_then_validate_and_carries_on_after_a_failure(tmp_path):
    spec = parse_sweep_spec({"base": BASE, "out_dir": str(tmp_path / "sweep"), "variants": [
        {"name": "good", "delta": {}}, {"name": "broken", "delta": {}}, {"name": "done", "delta": {}}]})
    plans = plan_runs(spec, python=fake_python(tmp_path))
    write_deltas(spec, plans)
    done = plans[2].run_dir
    (done / "checkpoints").mkdir(parents=True)
    (done / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (done / "metrics.json").write_text("{}")
    messages = []
    outcomes = run_plans(plans, skip_done=True, echo=messages.append)
    assert [o.status for o in outcomes] == ["ok", "failed: fit exit 3", "skipped"]
    calls = [line.split()[0] for line in (tmp_path / "calls.txt").read_text().splitlines()]
    assert calls == ["fit", "validate", "fit"]  # no validate after the failed fit, nothing for `done`
    assert (plans[1].run_dir / "fit.log").read_text().startswith(plans[1].fit[0])
    assert any("broken: failed: fit exit 3" in m for m in messages)


def test_sweep_runs_three_variants_on_cpu_and_writes_the_report(image_text_shards, tiny_clip_delta, tmp_path,
                                                                monkeypatch, capsys):
    """The shipped spec, shrunk to 3 tiny steps per run; each run is a `python -m mmpretrain
    fit` subprocess (the sweep itself runs in this process to spare one interpreter start)."""
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    out = tmp_path / "sweep"
    tiny = ["--", "-c", str(tiny_clip_delta), "--trainer.max_steps=3", "--trainer.val_check_interval=3",
            "--trainer.log_every_n_steps=1", "--trainer.enable_progress_bar=false", "--trainer.callbacks=[]",
            f"--data.init_args.train_shards={image_text_shards['train']}",
            f"--data.init_args.val_shards={image_text_shards['val']}",
            "--data.init_args.num_workers=0", "--data.init_args.batch_size=16"]
    code = sweep_command.main(["configs/sweeps/quickstart_lr.yaml", "--out-dir", str(out), "--no-validate", *tiny])
    stdout = capsys.readouterr().out
    assert code == 0, stdout + "".join((p / "fit.log").read_text()[-3000:] for p in out.glob("lr=*"))
    names = ["lr=0.0003", "lr=0.001", "lr=0.003"]
    runs = [load_run(out / name) for name in names]
    # the grid value reached the optimizer: same warmup schedule, peak lr in the grid's ratios
    lr_at_last_step = [run.last("train/lr") for run in runs]
    assert abs(lr_at_last_step[2] / lr_at_last_step[0] - 10.0) < 1e-3
    assert abs(lr_at_last_step[1] / lr_at_last_step[0] - 1e-3 / 3e-4) < 1e-3
    assert all("zeroshot_top1" in run.final for run in runs)
    report = (out / "report" / "report.md").read_text()
    for name in names:
        assert f"| {name} | 3 |" in report  # max_steps=3, as metrics.json says
    assert {p.name for p in (out / "report").glob("*.png")} >= {"loss.png", "lr.png", "zeroshot.png", "retrieval.png"}
    assert f"report written to {out / 'report' / 'report.md'}" in stdout
