"""A markdown report comparing runs: what varied, the final numbers, and the plots."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmpretrain.workflow.plots import write_plots
from mmpretrain.workflow.run_logs import (
    RunLogs,
    flatten_config,
    load_run,
    short_key_names,
    varied_config_keys,
)

REPORT_FILENAME = "report.md"


@dataclass(frozen=True)
class SummaryColumn:
    header: str
    higher_is_better: bool
    percent: bool


# final evaluation keys (metrics.json, else the last logged `val/` point)
EVAL_COLUMNS: dict[str, SummaryColumn] = {
    "zeroshot_top1": SummaryColumn("zero-shot top-1", True, True),
    "zeroshot_top5": SummaryColumn("zero-shot top-5", True, True),
    "i2t_r1": SummaryColumn("i2t R@1", True, True),
    "t2i_r1": SummaryColumn("t2i R@1", True, True),
    "i2t_r5": SummaryColumn("i2t R@5", True, True),
    "t2i_r5": SummaryColumn("t2i R@5", True, True),
}
TRAIN_COLUMNS: dict[str, SummaryColumn] = {
    "train/loss": SummaryColumn("final loss", False, False),
    "train/samples_per_sec": SummaryColumn("samples/s", True, False),
}


def final_eval(run: RunLogs, key: str) -> float | None:
    if key in run.final:
        return float(run.final[key])
    return run.last(f"val/{key}")


def summary_rows(runs: list[RunLogs]) -> list[dict[str, float | None]]:
    """Per run: final evaluation metrics and tail means of the training scalars."""
    rows = []
    for run in runs:
        row: dict[str, float | None] = {key: final_eval(run, key) for key in EVAL_COLUMNS}
        row.update({tag: run.tail_mean(tag) for tag in TRAIN_COLUMNS})
        rows.append(row)
    return rows


def _format(value: float | None, column: SummaryColumn) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}%" if column.percent else f"{value:.4g}"


def _format_config_value(value: Any) -> str:
    if value is None:
        return "–"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def last_step(run: RunLogs) -> int | None:
    """The run's optimizer steps, as `metrics.json` counts them. Lightning logs a training
    step's scalars under the steps completed *before* it (the last of 220 steps is logged at
    219), an evaluation's under the steps after it; `metrics.json` has the trainer's step."""
    ends = [curve[-1][0] + (1 if tag.startswith("train/") else 0) for tag, curve in run.curves.items() if curve]
    if isinstance(run.final.get("global_step"), int):
        ends.append(run.final["global_step"])
    return max(ends) if ends else None


def summary_table(runs: list[RunLogs]) -> str:
    """Markdown table, one row per run; the best value of each metric column is bold."""
    rows = summary_rows(runs)
    columns = {**EVAL_COLUMNS, **TRAIN_COLUMNS}
    shown = [key for key in columns if any(row[key] is not None for row in rows)]
    varied = varied_config_keys(runs)
    flats = [flatten_config(run.config) for run in runs]
    names = short_key_names(varied)
    header = ["run", "last step", *(names[key] for key in varied), *(columns[k].header for k in shown)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {}
    for key in shown:
        values = [row[key] for row in rows if row[key] is not None]
        best[key] = max(values) if columns[key].higher_is_better else min(values)
    for run, row, flat in zip(runs, rows, flats):
        step = last_step(run)
        cells = [run.name, "–" if step is None else str(step)]
        cells += [_format_config_value(flat.get(key)) for key in varied]
        for key in shown:
            text = _format(row[key], columns[key])
            cells.append(f"**{text}**" if len(runs) > 1 and row[key] == best[key] else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_markdown(runs: list[RunLogs], plots: dict[str, Path], out_dir: Path) -> str:
    lines = [f"# Run report ({len(runs)} run{'s' if len(runs) != 1 else ''})", ""]
    lines += [f"- `{run.name}`: `{os.path.relpath(run.run_dir, out_dir)}`" for run in runs]
    varied = varied_config_keys(runs)
    if varied:
        lines += ["", "Config keys that differ between the runs:", ""]
        lines += [f"- `{key}`" for key in varied]
    chance = {run.final.get("chance_top1") for run in runs} - {None}
    lines += ["", "## Summary", "", summary_table(runs), ""]
    lines.append("Evaluation columns are the final evaluation (`metrics.json`); `final loss` and "
                 "`samples/s` average the last 10% of logged training steps. Best value in bold.")
    if len(chance) == 1:
        lines.append(f"Zero-shot chance level: {100 * chance.pop():.1f}%.")
    lines += ["", "## Plots", ""]
    for name, path in plots.items():
        lines += [f"### {name}", "", f"![{name}]({os.path.relpath(path, out_dir)})", ""]
    return "\n".join(lines)


def default_report_dir(run_dirs: list[Path]) -> Path:
    """A single run's `RUN_DIR/report`; for several, `report` in their common parent folder."""
    if len(run_dirs) == 1:
        return run_dirs[0] / "report"
    return Path(os.path.commonpath([str(p.resolve()) for p in run_dirs])) / "report"


def _display_names(paths: list[Path]) -> list[str]:
    """Folder names, or parent/folder where two runs share a folder name."""
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{p.parent.name}/{p.name}" for p in paths]


def write_report(run_dirs: list[str | Path], out_dir: str | Path | None = None,
                 names: list[str] | None = None) -> Path:
    """Load the runs, write the plots and `report.md` into `out_dir`; returns the report path."""
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise ValueError("report needs at least one run directory")
    if names is not None and len(names) != len(paths):
        raise ValueError(f"got {len(names)} names for {len(paths)} run directories")
    runs = [load_run(path, name) for path, name in zip(paths, names or _display_names(paths))]
    out = Path(out_dir) if out_dir is not None else default_report_dir(paths)
    plots = write_plots(runs, out)
    report_path = out / REPORT_FILENAME
    report_path.write_text(report_markdown(runs, plots, out) + "\n")
    return report_path
