"""PNG plots comparing runs: one figure per metric group, one line per run.

Figures are `matplotlib.figure.Figure` objects built without pyplot, so writing a report
never needs or switches a GUI backend and keeps no figures alive in pyplot's registry;
a notebook displays them inline like any figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from mmpretrain.workflow.run_logs import Curve, RunLogs


@dataclass(frozen=True)
class PlotGroup:
    """One PNG: a panel per tag (panels whose tag no run logged are dropped)."""

    name: str
    title: str
    tags: tuple[str, ...]
    ylabel: str
    log_y: bool = False
    smooth: float = 0.0  # EMA weight for per-step noise; 0 = raw points


PLOT_GROUPS: tuple[PlotGroup, ...] = (
    PlotGroup("loss", "training loss", ("train/loss",), "loss", smooth=0.6),
    PlotGroup("lr", "learning rate", ("train/lr",), "lr"),
    PlotGroup("zeroshot", "zero-shot classification", ("val/zeroshot_top1", "val/zeroshot_top5"),
              "accuracy"),
    PlotGroup("retrieval", "retrieval recall", ("val/i2t_r1", "val/t2i_r1", "val/i2t_r5", "val/t2i_r5"),
              "recall"),
    PlotGroup("throughput", "training throughput", ("train/samples_per_sec",), "samples / s",
              smooth=0.6),
)


def ema(values: list[float], weight: float) -> list[float]:
    """TensorBoard-style exponential smoothing (no bias correction)."""
    smoothed, last = [], None
    for value in values:
        last = value if last is None else weight * last + (1 - weight) * value
        smoothed.append(last)
    return smoothed


def _draw_curve(axis, curve: Curve, label: str, smooth: float, color) -> None:
    steps = [s for s, _ in curve]
    values = [v for _, v in curve]
    marker = "o" if len(curve) <= 20 else None
    if smooth > 0 and len(curve) > 2:
        axis.plot(steps, values, color=color, alpha=0.25, linewidth=1)
        axis.plot(steps, ema(values, smooth), color=color, label=label, linewidth=1.5)
    else:
        axis.plot(steps, values, color=color, label=label, marker=marker, linewidth=1.5)


def plot_group(runs: list[RunLogs], group: PlotGroup) -> Figure | None:
    """A figure for `group`, or None when no run logged any of its tags."""
    tags = [tag for tag in group.tags if any(run.curves.get(tag) for run in runs)]
    if not tags:
        return None
    ncols = min(len(tags), 2)
    nrows = -(-len(tags) // ncols)
    figure = Figure(figsize=(5 * ncols, 3.4 * nrows))
    axes = figure.subplots(nrows, ncols, squeeze=False)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, tag in zip(axes.flat, tags):
        for index, run in enumerate(runs):
            if run.curves.get(tag):
                _draw_curve(axis, run.curves[tag], run.name, group.smooth, colors[index % len(colors)])
        axis.set_title(tag)
        axis.set_xlabel("step")
        axis.set_ylabel(group.ylabel)
        if group.log_y:
            axis.set_yscale("log")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(tags):]:
        axis.set_visible(False)
    axes[0][0].legend(fontsize="small")
    figure.suptitle(group.title)
    figure.tight_layout()
    return figure


def write_plots(runs: list[RunLogs], out_dir: Path,
                groups: tuple[PlotGroup, ...] = PLOT_GROUPS) -> dict[str, Path]:
    """Write `<group>.png` for every group some run has data for; returns name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for group in groups:
        figure = plot_group(runs, group)
        if figure is None:
            continue
        path = out_dir / f"{group.name}.png"
        figure.savefig(path, dpi=110)
        written[group.name] = path
    return written
