"""Results table of the CABS ablation runs (configs/exp/cabs/*.yaml), from their run dirs.

    for s in no_curation iid cabs_dm cabs_fm; do
      mmpretrain fit -c configs/trainer/cpu.yaml -c configs/exp/cabs/$s.yaml; done
    python -m benchmarks.cabs_table runs/cabs

Per run: final zero-shot top-1 and retrieval R@1 (metrics.json) and the batch concept
statistics averaged over all logged training steps (logs/*/metrics.csv).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

STATS = ("unique_concepts", "max_concept_count", "concept_entropy", "objects_per_sample", "selection_ms")
RUNS = ("no_curation", "iid", "cabs_dm", "cabs_fm")


def step_means(run_dir: Path) -> dict[str, float]:
    values: dict[str, list[float]] = {s: [] for s in STATS}
    for path in sorted(run_dir.glob("logs/*/metrics.csv")):
        with path.open() as f:
            for row in csv.DictReader(f):
                for stat in STATS:
                    cell = row.get(f"data/selection/{stat}_step")
                    if cell:
                        values[stat].append(float(cell))
    return {s: statistics.mean(v) for s, v in values.items() if v}


def run(root: str = "runs/cabs") -> dict:
    table = {}
    for name in RUNS:
        run_dir = Path(root) / name
        metrics_path = run_dir / "metrics.json"
        if not metrics_path.exists():
            continue
        metrics = json.loads(metrics_path.read_text())
        table[name] = {"zeroshot_top1": metrics.get("zeroshot_top1"),
                       "i2t_r1": metrics.get("i2t_r1"), "t2i_r1": metrics.get("t2i_r1"),
                       "global_step": metrics.get("global_step"), **step_means(run_dir)}
    return table


def markdown(table: dict) -> str:
    header = ("| run | steps | zero-shot top-1 | I->T R@1 | T->I R@1 | unique concepts | max concept count "
              "| entropy (nats) | objects/sample | selection ms |")
    lines = [header, "|" + "---|" * 10]
    for name, row in table.items():
        def cell(key: str, scale: float = 1.0, digits: int = 2) -> str:
            value = row.get(key)
            return "n/a" if value is None else f"{scale * value:.{digits}f}"
        lines.append(f"| {name} | {row['global_step']} | {cell('zeroshot_top1', 100, 1)}% | "
                     f"{cell('i2t_r1', 100, 1)}% | {cell('t2i_r1', 100, 1)}% | {cell('unique_concepts', digits=1)} | "
                     f"{cell('max_concept_count', digits=1)} | {cell('concept_entropy')} | "
                     f"{cell('objects_per_sample')} | {cell('selection_ms')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="runs/cabs", help="folder holding the four run dirs")
    print(markdown(run(parser.parse_args(argv).root)))


if __name__ == "__main__":
    main()
