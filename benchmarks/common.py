"""Shared harness pieces: interleaved trials, medians and ratios, tables, machine facts, JSON."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

MMPRETRAIN, OPEN_CLIP = "mmpretrain", "open_clip"


def interleave(trials: dict[str, Callable[[], dict[str, float]]], rounds: int,
               log: Callable[[str], None] = print) -> dict[str, list[dict[str, float]]]:
    """Run every trial once per round, alternating the order (A B, B A, ...) so drift in
    machine load hits all trials alike. A trial returns a dict of measurements."""
    names = list(trials)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for round_index in range(rounds):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            measured = trials[name]()
            results[name].append(measured)
            shown = ", ".join(f"{k}={v:.4g}" for k, v in measured.items() if isinstance(v, (int, float)))
            log(f"    round {round_index + 1}/{rounds} {name}: {shown}")
    return results


def summarize(values: Sequence[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": list(values)}


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> dict[str, Any]:
    """Median of per-round ratios (noise shared within a round cancels) and ratio of medians."""
    per_round = [n / d for n, d in zip(numerators, denominators) if d > 0]
    return {"median_of_round_ratios": statistics.median(per_round) if per_round else None,
            "ratio_of_medians": (statistics.median(numerators) / statistics.median(denominators)
                                 if denominators and statistics.median(denominators) > 0 else None),
            "per_round": per_round}


def column(results: list[dict[str, float]], key: str) -> list[float]:
    return [r[key] for r in results]


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in header]] + [[format_value(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(cells[0], widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths)))
              for row in cells[1:]]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(), "cpu_model": cpu_model(), "python": platform.python_version(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import open_clip
        info["open_clip"] = open_clip.__version__
    except ImportError:
        info["open_clip"] = None
    return info


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was requested but CUDA is not available")
    return device


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
