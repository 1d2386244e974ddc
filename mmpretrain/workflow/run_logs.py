"""Read what a run directory recorded: scalar curves, final evaluation, resolved config.

Layout (see `mmpretrain/lightning_cli.py`): `RUN_DIR/logs/version_*/metrics.csv` (CSVLogger),
`RUN_DIR/logs/version_*/events.out.tfevents.*` (TensorBoard), `RUN_DIR/logs/version_*/
config.yaml` (LightningCLI's resolved config) and `RUN_DIR/metrics.json` (the last
validate/test). Every `fit` or `validate` invocation adds new `version_*` folders, so a run
that was resumed has its curves split over several of them; they are merged in version order
and a later value for the same step wins. Evaluation-only logs (a `validate` after
training logs its metrics at step 0) are left out of the curves: their numbers are the final
evaluation, which `metrics.json` already holds.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

METRICS_JSON = "metrics.json"
TRAIN_PREFIX = "train/"

Curve = list[tuple[int, float]]


@dataclass
class RunLogs:
    name: str
    run_dir: Path
    curves: dict[str, Curve] = field(default_factory=dict)
    final: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def last(self, tag: str) -> float | None:
        curve = self.curves.get(tag)
        return curve[-1][1] if curve else None

    def tail_mean(self, tag: str, fraction: float = 0.1) -> float | None:
        """Mean over the last `fraction` of the curve's points (at least one): a noise-robust
        'final' value for per-step training scalars such as the loss or throughput."""
        curve = self.curves.get(tag)
        if not curve:
            return None
        tail = curve[-max(1, int(len(curve) * fraction)):]
        return sum(v for _, v in tail) / len(tail)

    @property
    def max_step(self) -> int | None:
        steps = [curve[-1][0] for curve in self.curves.values() if curve]
        return max(steps) if steps else None


def _version_number(path: Path) -> int:
    match = re.fullmatch(r"version_(\d+)", path.name)
    return int(match.group(1)) if match else -1


def _version_dirs(run_dir: Path) -> list[Path]:
    logs = run_dir / "logs"
    if not logs.is_dir():
        return []
    dirs = {p.parent for pattern in ("metrics.csv", "events.out.tfevents.*", "config.yaml")
            for p in logs.rglob(pattern)}
    return sorted(dirs, key=lambda p: (_version_number(p), str(p)))


def _merge(curves: dict[str, dict[int, float]], tag: str, step: int, value: float) -> None:
    if not math.isnan(value):
        curves.setdefault(tag, {})[step] = value


def _read_csv(path: Path) -> dict[str, dict[int, float]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    curves: dict[str, dict[int, float]] = {}
    for row in rows:
        step_text = row.get("step")
        if not step_text:
            continue
        for tag, text in row.items():
            if tag in ("epoch", "step") or text in (None, ""):
                continue
            try:
                _merge(curves, tag, int(float(step_text)), float(text))
            except ValueError as exn:
                raise ValueError(f"{path}: column {tag!r} holds a non-number {text!r}") from exn
    return curves


def _read_tensorboard(version_dir: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(version_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    curves: dict[str, dict[int, float]] = {}
    for tag in accumulator.Tags().get("scalars", []):
        for event in accumulator.Scalars(tag):
            _merge(curves, tag, int(event.step), float(event.value))
    return curves


def _is_training_log(curves: dict[str, dict[int, float]]) -> bool:
    return any(tag.startswith(TRAIN_PREFIX) for tag in curves)


def read_curves(run_dir: Path) -> dict[str, Curve]:
    """Tag -> [(step, value)] sorted by step, from CSV logs (TensorBoard events where a
    version folder has no CSV), merged over the run's training log versions."""
    merged: dict[str, dict[int, float]] = {}
    for version_dir in _version_dirs(run_dir):
        csv_path = version_dir / "metrics.csv"
        if csv_path.is_file():
            curves = _read_csv(csv_path)
        elif any(version_dir.glob("events.out.tfevents.*")):
            curves = _read_tensorboard(version_dir)
        else:
            continue
        if not _is_training_log(curves):
            continue
        for tag, points in curves.items():
            merged.setdefault(tag, {}).update(points)
    return {tag: sorted(points.items()) for tag, points in sorted(merged.items())}


def read_config(run_dir: Path) -> dict[str, Any]:
    """The newest resolved config LightningCLI saved for this run ({} when there is none)."""
    configs = [d / "config.yaml" for d in _version_dirs(run_dir) if (d / "config.yaml").is_file()]
    configs += [p for p in (run_dir / "config.yaml",) if p.is_file()]
    if not configs:
        return {}
    newest = max(configs, key=lambda p: p.stat().st_mtime)
    try:
        return yaml.safe_load(newest.read_text()) or {}
    except yaml.YAMLError as exn:
        raise ValueError(f"{newest}: not valid YAML: {exn}") from exn


def read_final_metrics(run_dir: Path) -> dict[str, Any]:
    path = run_dir / METRICS_JSON
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exn:
        raise ValueError(f"{path}: not valid JSON: {exn}") from exn


def load_run(run_dir: str | Path, name: str | None = None) -> RunLogs:
    """Everything a report needs about one run. Raises when the folder holds no logs at all."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    run = RunLogs(name=name or run_dir.name, run_dir=run_dir, curves=read_curves(run_dir),
                  final=read_final_metrics(run_dir), config=read_config(run_dir))
    if not run.curves and not run.final:
        raise ValueError(f"{run_dir}: no training logs (logs/version_*/metrics.csv or TensorBoard "
                         f"events) and no {METRICS_JSON}; is this a run directory?")
    return run


def flatten_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay values (compared as a whole)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_config(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


# keys that differ between runs without being an ablation choice: where a run writes, and how
# much it prints (`verbose`, progress bars, model summary)
_INCIDENTAL_KEYS = ("trainer.default_root_dir", "ckpt_path")
_RUNTIME_ONLY_NAMES = ("verbose", "enable_progress_bar", "enable_model_summary", "refresh_rate",
                       "default_root_dir", "dirpath", "save_dir", "ckpt_path")


def is_runtime_only(key: str) -> bool:
    return key in _INCIDENTAL_KEYS or key.rsplit(".", 1)[-1] in _RUNTIME_ONLY_NAMES


def varied_config_keys(runs: list[RunLogs]) -> list[str]:
    """Config keys whose value differs between the runs (the ablation's axes)."""
    flats = [flatten_config(run.config) for run in runs if run.config]
    if len(flats) < 2:
        return []
    keys = sorted(set().union(*flats))
    return [k for k in keys if not is_runtime_only(k)
            and len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1]


def short_key_names(keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest trailing part that no other key ends with, `init_args`
    dropped: `...vision.init_args.width` / `...text.init_args.width` -> `vision.width` /
    `text.width`, while a lone `...optimizer.init_args.lr` stays `lr`."""
    parts = {key: [p for p in key.split(".") if p != "init_args"] or [key] for key in keys}
    names = {}
    for key, own in parts.items():
        for n in range(1, len(own) + 1):
            suffix = own[-n:]
            if not any(other[-n:] == suffix for k, other in parts.items() if k != key):
                break
        names[key] = ".".join(own[-n:]) if n < len(own) else key
    return names
