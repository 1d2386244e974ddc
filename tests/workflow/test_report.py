"""`mmpretrain report`: plots hold the runs' curves, the summary table their final numbers."""

from __future__ import annotations

from pathlib import Path

from mmpretrain.commands import report as report_command
from mmpretrain.workflow.plots import PLOT_GROUPS, ema, plot_group
from mmpretrain.workflow.report import summary_table, write_report
from mmpretrain.workflow.run_logs import load_run

from .test_run_logs import make_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_ema_matches_tensorboard_smoothing():
    assert ema([1.0, 3.0, 3.0], 0.5) == [1.0, 2.0, 2.5]
    assert ema([5.0], 0.9) == [5.0]


def test_plot_lines_are_the_runs_curves(tmp_path):
    runs = [load_run(make_run(tmp_path / "a", 1e-3, [3.0, 2.0, 1.0], 0.4)),
            load_run(make_run(tmp_path / "b", 3e-3, [3.0, 1.5, 0.5], 0.6))]
    lr_group = next(g for g in PLOT_GROUPS if g.name == "lr")
    figure = plot_group(runs, lr_group)
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["a", "b"]
    assert list(lines[1].get_ydata()) == [3e-3] * 3 and list(lines[1].get_xdata()) == [0, 1, 2]
    throughput = next(g for g in PLOT_GROUPS if g.name == "throughput")
    assert plot_group(runs, throughput) is None  # nobody logged it


def test_summary_marks_the_best_run(tmp_path):
    runs = [load_run(make_run(tmp_path / "a", 1e-3, [3.0, 2.0, 1.0], 0.4)),
            load_run(make_run(tmp_path / "b", 3e-3, [3.0, 1.5, 0.5], 0.6))]
    table = summary_table(runs).splitlines()
    assert table[0] == "| run | last step | lr | zero-shot top-1 | i2t R@1 | final loss |"
    assert table[2] == "| a | 3 | 0.001 | 40.0% | 13.3% | 1 |"  # 3 steps: logged at 0, 1, 2
    assert table[3] == "| b | 3 | 0.003 | **60.0%** | **20.0%** | **0.5** |"


def test_report_command_writes_pngs_and_markdown(tmp_path, capsys):
    run_dirs = [make_run(tmp_path / "runs" / name, lr, [3.0, 2.0, 1.0], z)
                for name, lr, z in (("a", 1e-3, 0.4), ("b", 3e-3, 0.6))]
    assert report_command.main([str(p) for p in run_dirs]) == 0
    out = tmp_path / "runs" / "report"
    assert f"report written to {out / 'report.md'}" in capsys.readouterr().out
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["loss.png", "lr.png", "zeroshot.png"]
    assert all((out / name).read_bytes().startswith(PNG_MAGIC) for name in pngs)
    markdown = (out / "report.md").read_text()
    assert "![loss](loss.png)" in markdown and "`model.init_args.optimizer.init_args.lr`" in markdown
    assert "Zero-shot chance level: 10.0%." in markdown
    assert report_command.main([str(tmp_path / "nope")]) == 2


def test_report_names_and_out_dir(tmp_path):
    run_dir = make_run(tmp_path / "r", 1e-3, [2.0, 1.0], 0.5)
    path = write_report([run_dir], tmp_path / "out", names=["baseline"])
    assert path == tmp_path / "out" / "report.md"
    assert "| baseline |" in path.read_text()
    assert write_report([run_dir]) == Path(run_dir) / "report" / "report.md"


def test_runs_sharing_a_folder_name_are_told_apart(tmp_path):
    run_dirs = [make_run(tmp_path / parent / "seed0", 1e-3, [2.0, 1.0], 0.5) for parent in ("a", "b")]
    markdown = write_report(run_dirs, tmp_path / "out").read_text()
    assert "| a/seed0 |" in markdown and "| b/seed0 |" in markdown
