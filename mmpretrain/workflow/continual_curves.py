"""Continual runs side by side: read each run's `continual/evaluations.csv` back into
`Evaluation`s and draw accumulation / retention curves of several methods, and the
per-eval-set accuracy matrix of one run (which task's data is forgotten when).

Figures are `matplotlib.figure.Figure` objects built without pyplot (see `workflow.plots`).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from mmpretrain.eval.continual import RESULTS_DIRNAME, Evaluation

EVALUATIONS_FILENAME = "evaluations.csv"
_SUMMARY_COLUMNS = ("step", "task", "phase", "a_ka", "a_zs", "gm")


def _optional_float(text: str) -> float | None:
    return float(text) if text not in ("", "None") else None


def read_evaluations(run_dir: str | Path) -> list[Evaluation]:
    """The evaluations a continual run wrote (every start / probe / end evaluation, in order)."""
    path = Path(run_dir) / RESULTS_DIRNAME / EVALUATIONS_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no continual evaluations (is {run_dir} a finished continual run?)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [Evaluation(step=int(row["step"]), task=int(row["task"]), phase=row["phase"],
                       accuracy={name: float(value) for name, value in row.items()
                                 if name not in _SUMMARY_COLUMNS and value not in ("", "None")},
                       a_ka=_optional_float(row["a_ka"]), a_zs=_optional_float(row["a_zs"]))
            for row in rows]


def method_curves(runs: dict[str, Sequence[Evaluation]]) -> Figure:
    """Two panels, one line per run: A_KA and A_ZS over training steps (probes included, so
    the within-task dips show)."""
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, key, title in ((axes[0], "a_ka", "knowledge accumulation A_KA"),
                           (axes[1], "a_zs", "zero-shot retention A_ZS")):
        for name, evaluations in runs.items():
            points = [(e.step, getattr(e, key)) for e in evaluations if getattr(e, key) is not None]
            if points:
                ax.plot(*zip(*points), marker=".", label=name)
        ax.set(title=title, xlabel="step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("zero-shot top-1")
    axes[1].legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def accuracy_matrix(evaluations: Sequence[Evaluation]) -> tuple[list[str], list[str], list[list[float]]]:
    """(row labels: "start" and "after task t", eval-set names, accuracy[row][set]) from the
    start and end-of-task evaluations."""
    rows = [e for e in evaluations if e.phase in ("start", "end")]
    sets = sorted({name for e in rows for name in e.accuracy})
    labels = ["start" if e.phase == "start" else f"after task {e.task}" for e in rows]
    return labels, sets, [[e.accuracy.get(name, float("nan")) for name in sets] for e in rows]


def accuracy_heatmap(evaluations: Sequence[Evaluation], title: str = "") -> Figure:
    labels, sets, values = accuracy_matrix(evaluations)
    fig = Figure(figsize=(1.2 * len(sets) + 2.5, 0.45 * len(labels) + 1.5))
    ax = fig.subplots()
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(sets)), sets, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if value < 0.6 else "black")
    ax.set_title(title or "zero-shot top-1 per eval set")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig
