"""`mmpretrain plot-schedules OUT_DIR --steps-per-task S --tasks T`: one PNG per stream LR schedule
(mmpretrain.continual.schedules) plus `overlay.png` with all of them, lr as a fraction of eta_max.

The infinite schedule's plot also shows its release branch (exponential anneal from
`--anneal-start`, by default the start of the last task, over `--anneal-steps`) dashed.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from mmpretrain.continual.schedules import SCHEDULE_NAMES, ContinualSchedule, schedule_curve

HELP = "plot every continual LR schedule (re-warmed, meta, infinite, ...) to PNG files"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmpretrain plot-schedules", description=HELP)
    parser.add_argument("out_dir", metavar="OUT_DIR",
                        help="folder for <schedule>.png + overlay.png")
    parser.add_argument("--steps-per-task", type=int, required=True, help="S, steps in each task")
    parser.add_argument("--tasks", type=int, required=True, help="T, number of tasks")
    parser.add_argument("--warmup-fraction", type=float, default=0.1)
    parser.add_argument("--cooldown-fraction", type=float, default=0.1)
    parser.add_argument("--min-lr-ratio", type=float, default=1e-3)
    parser.add_argument("--infinite-const-ratio", type=float, default=0.5)
    parser.add_argument("--anneal-start", type=int, default=None,
                        help="infinite schedule's release branch start N_d "
                             "(default: the last task's start)")
    parser.add_argument("--anneal-steps", type=int, default=None,
                        help="t_a, anneal length (default: half a task)")
    return parser


def _schedules(args: argparse.Namespace) -> dict[str, ContinualSchedule]:
    common = dict(steps_per_task=args.steps_per_task, warmup_fraction=args.warmup_fraction,
                  cooldown_fraction=args.cooldown_fraction, min_lr_ratio=args.min_lr_ratio,
                  infinite_const_ratio=args.infinite_const_ratio)
    return {name: ContinualSchedule(name, **common) for name in SCHEDULE_NAMES}


def _anneal_branch(args: argparse.Namespace, base: ContinualSchedule) -> ContinualSchedule | None:
    start = args.anneal_start
    if start is None:
        start = (args.tasks - 1) * args.steps_per_task
    steps = args.anneal_steps if args.anneal_steps is not None else max(1, args.steps_per_task // 2)
    try:
        return dataclasses.replace(base, infinite_anneal_start=start, infinite_anneal_steps=steps)
    except ValueError as err:
        if args.anneal_start is not None:
            raise
        print(f"plot-schedules: no release branch drawn ({err})")
        return None


def _frame(axis, args: argparse.Namespace) -> None:
    """Task boundaries, labels, grid."""
    for boundary in range(args.steps_per_task, args.tasks * args.steps_per_task,
                          args.steps_per_task):
        axis.axvline(boundary, color="0.8", linewidth=0.8, linestyle=":")
    axis.set_xlabel("global step")
    axis.set_ylabel("lr / eta_max")
    axis.grid(alpha=0.3)


def write_schedule_plots(args: argparse.Namespace) -> list[Path]:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = args.tasks * args.steps_per_task
    steps = list(range(total))
    schedules = _schedules(args)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    overlay = Figure(figsize=(9, 4.5))
    overlay_axis = overlay.subplots()
    _frame(overlay_axis, args)
    written = []
    for index, (name, schedule) in enumerate(schedules.items()):
        lrs = schedule_curve(schedule, total)
        figure = Figure(figsize=(7, 3.4))
        axis = figure.subplots()
        _frame(axis, args)
        axis.plot(steps, lrs, linewidth=1.4, color=colors[index % len(colors)], label=name)
        branch = _anneal_branch(args, schedule) if name == "infinite" else None
        if branch is not None:
            start = branch.infinite_anneal_start
            axis.plot(steps[start:], schedule_curve(branch, total)[start:], linestyle="--",
                      color="black", linewidth=1.2, label="release branch (anneal)")
        axis.legend(fontsize="small")
        axis.set_title(f"{name}: {args.tasks} tasks x {args.steps_per_task} steps")
        figure.tight_layout()
        written.append(out_dir / f"{name}.png")
        figure.savefig(written[-1], dpi=110)
        overlay_axis.plot(steps, lrs, linewidth=1.4, color=colors[index % len(colors)],
                          label=name)
    overlay_axis.legend(fontsize="small", ncol=3)
    overlay_axis.set_title("continual LR schedules")
    overlay.tight_layout()
    written.append(out_dir / "overlay.png")
    overlay.savefig(written[-1], dpi=110)
    return written


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.tasks < 1:
        print(f"mmpretrain plot-schedules: --tasks must be >= 1, got {args.tasks}")
        return 2
    try:
        written = write_schedule_plots(args)
    except ValueError as err:
        print(f"mmpretrain plot-schedules: {err}")
        return 2
    print("\n".join(str(path) for path in written))
    return 0
