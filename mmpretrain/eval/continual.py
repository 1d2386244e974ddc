"""Continual-learning metrics: knowledge accumulation, zero-shot retention, GM, stability gap.

An *evaluation* is zero-shot top-1 on every eval set at one step. A_KA is the mean over the
eval sets of the tasks trained on so far (the current one included), A_ZS the mean over the
held-out sets, GM = sqrt(A_KA * A_ZS). The stability-gap dip of a task is the lowest A_ZS
measured while training on it minus A_ZS when it started (<= 0 when retention dipped).

Results of a run go to `RUN_DIR/continual/`: `evaluations.csv` (every evaluation),
`continual.png` (A_KA / A_ZS / GM over steps, task boundaries marked) and `results.md` plus
`summary.json`. `python -m mmpretrain.eval.continual RUN_DIR ...` prints the method table of
several runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from mmpretrain.eval.zeroshot import build_zeroshot_classifier, zeroshot_accuracy

RESULTS_DIRNAME = "continual"
SUMMARY_FILENAME = "summary.json"


@dataclass
class Evaluation:
    """One evaluation: `phase` is "start" (before the first task), "probe" (within task `task`)
    or "end" (after task `task`, with the weights the method evaluates)."""

    step: int
    task: int
    phase: str
    accuracy: dict[str, float] = field(default_factory=dict)
    a_ka: float | None = None
    a_zs: float | None = None

    @property
    def gm(self) -> float | None:
        if self.a_ka is None or self.a_zs is None:
            return None
        return math.sqrt(max(self.a_ka, 0.0) * max(self.a_zs, 0.0))


@torch.no_grad()
def zeroshot_top1(encode_image: Callable[[torch.Tensor], torch.Tensor],
                  encode_text: Callable[[torch.Tensor], torch.Tensor], images_N3HW: torch.Tensor,
                  labels_N: torch.Tensor, prompts_CTL: torch.Tensor, chunk_size: int = 256) -> float:
    """Top-1 zero-shot accuracy of one eval set (summed over ranks by `zeroshot_accuracy`)."""
    classifier_DC = build_zeroshot_classifier(encode_text, prompts_CTL)
    feats = [encode_image(images_N3HW[i : i + chunk_size]) for i in range(0, images_N3HW.shape[0], chunk_size)]
    feats_ND = torch.cat(feats) if feats else images_N3HW.new_zeros(0, classifier_DC.shape[0])
    return zeroshot_accuracy(feats_ND, labels_N.to(feats_ND.device), classifier_DC, topk=(1,))["zeroshot_top1"]


def summarize(evaluation: Evaluation, task_sets: dict[str, int], heldout_sets: Sequence[str]) -> Evaluation:
    """Fill A_KA (sets of tasks <= evaluation.task; none at "start") and A_ZS."""
    seen = [evaluation.accuracy[name] for name, task in task_sets.items()
            if evaluation.phase != "start" and task <= evaluation.task]
    heldout = [evaluation.accuracy[name] for name in heldout_sets]
    evaluation.a_ka = sum(seen) / len(seen) if seen else None
    evaluation.a_zs = sum(heldout) / len(heldout) if heldout else None
    return evaluation


def stability_dips(evaluations: Sequence[Evaluation]) -> dict[int, float]:
    """Per task: min A_ZS within the task (probes and its end) minus A_ZS when it began (the
    previous "end" evaluation, or "start")."""
    dips: dict[int, float] = {}
    before: float | None = None
    for evaluation in evaluations:
        if evaluation.a_zs is None:
            continue
        if evaluation.phase == "start":
            before = evaluation.a_zs
            continue
        if before is not None:
            dips[evaluation.task] = min(dips.get(evaluation.task, 0.0), evaluation.a_zs - before)
        if evaluation.phase == "end":
            before = evaluation.a_zs
    return dips


def summary(evaluations: Sequence[Evaluation]) -> dict[str, float | int | None]:
    ends = [e for e in evaluations if e.phase == "end"]
    dips = stability_dips(evaluations)
    last = ends[-1] if ends else None
    start = next((e for e in evaluations if e.phase == "start"), None)
    return {"tasks_done": len(ends), "a_ka": last and last.a_ka, "a_zs": last and last.a_zs, "gm": last and last.gm,
            "a_zs_start": start and start.a_zs, "min_dip": min(dips.values()) if dips else None,
            "mean_gm": sum(e.gm for e in ends if e.gm is not None) / len(ends) if ends else None}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def results_markdown(evaluations: Sequence[Evaluation], task_names: Sequence[str]) -> str:
    dips = stability_dips(evaluations)
    lines = ["| after | step | A_KA | A_ZS | GM | dip A_ZS |", "|---|---:|---:|---:|---:|---:|"]
    for e in evaluations:
        if e.phase in ("start", "end"):
            label = "start" if e.phase == "start" else f"task {e.task} ({task_names[e.task]})"
            dip = dips.get(e.task) if e.phase == "end" else None
            lines.append(f"| {label} | {e.step} | {_pct(e.a_ka)} | {_pct(e.a_zs)} | {_pct(e.gm)} | {_pct(dip)} |")
    result = summary(evaluations)
    lines += ["", f"Final: A_KA {_pct(result['a_ka'])}, A_ZS {_pct(result['a_zs'])}, GM {_pct(result['gm'])}, "
              f"min dip {_pct(result['min_dip'])} (percent; zero-shot top-1)."]
    return "\n".join(lines) + "\n"


def write_results(out_dir: Path, evaluations: Sequence[Evaluation], task_names: Sequence[str],
                  steps_per_task: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    set_names = sorted({name for e in evaluations for name in e.accuracy})
    with open(out_dir / "evaluations.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "task", "phase", "a_ka", "a_zs", "gm", *set_names])
        for e in evaluations:
            writer.writerow([e.step, e.task, e.phase, e.a_ka, e.a_zs, e.gm, *(e.accuracy.get(n) for n in set_names)])
    (out_dir / "results.md").write_text(results_markdown(evaluations, task_names))
    (out_dir / SUMMARY_FILENAME).write_text(json.dumps(summary(evaluations), indent=2) + "\n")
    _plot(out_dir / "continual.png", evaluations, len(task_names), steps_per_task)


def _plot(path: Path, evaluations: Sequence[Evaluation], num_tasks: int, steps_per_task: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("a_ka", "A_KA (seen tasks)"), ("a_zs", "A_ZS (held-out)"), ("gm", "GM")):
        points = [(e.step, getattr(e, key)) for e in evaluations if getattr(e, key) is not None]
        if points:
            ax.plot(*zip(*points), marker=".", label=label)
    for task in range(1, num_tasks):
        ax.axvline(task * steps_per_task, color="grey", linewidth=0.5, linestyle="--")
    ax.set(xlabel="step", ylabel="zero-shot top-1", ylim=(0, 1), title="continual stream")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluations_to_state(evaluations: Sequence[Evaluation]) -> list[dict]:
    return [asdict(e) for e in evaluations]


def evaluations_from_state(state: Sequence[dict]) -> list[Evaluation]:
    return [Evaluation(**entry) for entry in state]


def compare_runs(run_dirs: Sequence[str | Path]) -> str:
    """Markdown table of the final A_KA / A_ZS / GM / min dip of several runs."""
    lines = ["| run | tasks | A_KA | A_ZS | GM | min dip A_ZS | A_ZS at start |", "|---|---:|---:|---:|---:|---:|---:|"]
    for run_dir in run_dirs:
        path = Path(run_dir) / RESULTS_DIRNAME / SUMMARY_FILENAME
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no continual summary (is {run_dir} a finished continual run?)")
        s = json.loads(path.read_text())
        lines.append(f"| {Path(run_dir).name} | {s['tasks_done']} | {_pct(s['a_ka'])} | {_pct(s['a_zs'])} | "
                     f"{_pct(s['gm'])} | {_pct(s['min_dip'])} | {_pct(s['a_zs_start'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Method table of continual runs (A_KA, A_ZS, GM, dip).")
    parser.add_argument("run_dirs", nargs="+", help="run directories (trainer.default_root_dir)")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    try:
        table = compare_runs(args.run_dirs)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(table, end="")
    if args.out:
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
