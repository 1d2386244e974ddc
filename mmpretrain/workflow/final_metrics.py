"""The compact table of final metrics printed at the end of every fit / validate / test.

Every family logs its evaluation under `val/` or `test/` (`metrics.json` holds them flat) and
continual runs log `continual/*` and write `RUN_DIR/continual/`. The table groups metrics by
their family prefix so each family reads at a glance: zero-shot and retrieval (contrastive,
CABS), t2v/v2t and the temporal probe (video), action heads and return (robot), A_KA/A_ZS/GM
(continual), perplexities (interleaved). It is never empty: with nothing evaluated it says why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from mmpretrain.eval.continual import SUMMARY_FILENAME

_BOOKKEEPING = ("stage", "global_step", "epoch")
_CELLS_PER_ROW = 3


def _value(value: float) -> str:
    return f"{value:.4g}"


def _family(name: str) -> str:
    """`zeroshot_top1` -> `zeroshot`, `i2t_r1` -> `i2t`, `continual/a_ka` -> `continual`."""
    return name.replace("/", "_").split("_", 1)[0]


_RETRIEVAL = {"i2t": "image->text", "t2i": "text->image", "v2t": "video->text", "t2v": "text->video"}


def headline(metrics: Mapping[str, float]) -> tuple[list[str], set[str]]:
    """Zero-shot (against chance) and retrieval as sentences; returns the lines and the keys used."""
    lines, used = [], set()
    if "zeroshot_top1" in metrics:
        line = f"  zero-shot top-1 {100 * metrics['zeroshot_top1']:.1f}%"
        used.add("zeroshot_top1")
        if "zeroshot_top5" in metrics:
            line += f"  top-5 {100 * metrics['zeroshot_top5']:.1f}%"
            used.add("zeroshot_top5")
        if metrics.get("chance_top1"):
            chance = metrics["chance_top1"]
            line += f"  (chance {100 * chance:.1f}%, {metrics['zeroshot_top1'] / chance:.1f}x chance)"
            used.add("chance_top1")
        lines.append(line)
    for direction, label in _RETRIEVAL.items():
        keys = [f"{direction}_r{k}" for k in (1, 5, 10)]
        if all(k in metrics for k in keys):
            lines.append(f"  {label:12s} " + "  ".join(
                f"R@{k[len(direction) + 2:]} {100 * metrics[k]:.1f}%" for k in keys))
            used.update(keys)
    counts = sorted(k for k in metrics if k.endswith("_count"))
    if counts:
        lines.append("  evaluated on " + ", ".join(f"{k[:-len('_count')]} {int(metrics[k])}" for k in counts)
                     + " samples")
        used.update(counts)
    return lines, used


def metrics_table(metrics: Mapping[str, float], skip: set[str] = frozenset()) -> list[str]:
    """One row per family (wrapped after a few cells), names in full, aligned columns."""
    names = sorted(k for k, v in metrics.items()
                   if k not in _BOOKKEEPING and k not in skip and isinstance(v, (int, float)))
    if not names:
        return []
    width = max(len(n) for n in names)
    rows: list[str] = []
    families: dict[str, list[str]] = {}
    for name in names:
        families.setdefault(_family(name), []).append(name)
    for members in families.values():
        for start in range(0, len(members), _CELLS_PER_ROW):
            cells = [f"{n:<{width}} {_value(metrics[n]):>9}" for n in members[start:start + _CELLS_PER_ROW]]
            rows.append("  " + "   ".join(cells))
    return rows


def format_final_metrics(stage: str, metrics: Mapping[str, float], step: int | None = None,
                         metrics_path: Path | None = None, continual_dir: Path | None = None,
                         empty_reason: str | None = None) -> str:
    header = f"Final metrics ({stage}" + (f", step {step})" if step is not None else ")")
    sentences, used = headline(metrics)
    lines = ["", header, *sentences, *metrics_table(metrics, used)]
    lines += continual_summary(continual_dir) if continual_dir is not None else []
    if len(lines) == 2:
        lines.append(f"  no evaluation metrics: {empty_reason or 'nothing was evaluated'}")
    if metrics_path is not None:
        lines.append(f"metrics written to {metrics_path}")
    return "\n".join(lines)


def continual_summary(continual_dir: Path) -> list[str]:
    """The final A_KA / A_ZS / GM of a continual run and where its full table is."""
    summary_path = continual_dir / SUMMARY_FILENAME
    if not summary_path.is_file():
        return []
    summary = json.loads(summary_path.read_text())

    def pct(key: str) -> str:
        return "-" if summary.get(key) is None else f"{100 * summary[key]:.1f}%"

    return [f"  continual after {summary.get('tasks_done', '?')} tasks: A_KA {pct('a_ka')}  "
            f"A_ZS {pct('a_zs')}  GM {pct('gm')}  min dip {pct('min_dip')}",
            f"  continual table: {continual_dir / 'results.md'}"]
