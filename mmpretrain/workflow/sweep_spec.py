"""Ablation specs: a base config stack plus variants, expanded into one run per variant.

```yaml
name: quickstart_lr                    # sweep name (default: the spec file's stem)
out_dir: runs/sweeps/quickstart_lr     # run i goes to OUT_DIR/<variant name>
base: [configs/trainer/cpu.yaml, configs/exp/clip/quickstart.yaml]
args: [--trainer.max_steps=300]        # extra CLI arguments for every run
validate: true                         # `validate` the last checkpoint after each `fit`
variants:                              # YAML deltas: inline mappings or paths to YAML files
  - {name: lr_3e-4, delta: {model: {init_args: {optimizer: {init_args: {lr: 3.0e-4}}}}}}
  - {name: small_batch, delta: configs/some_delta.yaml}
grid:                                  # dotted key -> values; every combination is a run
  data.init_args.batch_size: [64, 128]
```

`variants` and `grid` may both be given: every variant is combined with every grid point.
Each run's delta (variant delta merged with its grid point) is written to
`OUT_DIR/<name>/delta.yaml` and passed as the last `-c`, so it overrides the base stack
exactly as a hand-written ablation file would. Relative paths in `base` and variant files
are resolved against the working directory the sweep is started from (the repo root).
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_SPEC_KEYS = {"name", "out_dir", "base", "args", "validate", "variants", "grid"}
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._=+,-]+")


@dataclass(frozen=True)
class SweepRun:
    name: str
    delta: dict[str, Any]


@dataclass
class SweepSpec:
    name: str
    out_dir: Path
    base: list[Path]
    runs: list[SweepRun]
    args: list[str] = field(default_factory=list)
    validate: bool = True


def dotted_to_nested(dotted: dict[str, Any]) -> dict[str, Any]:
    """{'a.b': 1, 'a.c': 2} -> {'a': {'b': 1, 'c': 2}}."""
    nested: dict[str, Any] = {}
    for key, value in dotted.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"grid key {key!r} conflicts with another key setting {part!r}")
        node[leaf] = value
    return nested


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def safe_run_name(name: str) -> str:
    cleaned = _UNSAFE_NAME_CHARS.sub("_", name).strip("._")
    if not cleaned:
        raise ValueError(f"run name {name!r} has no usable characters")
    return cleaned


def _grid_point_name(point: dict[str, Any]) -> str:
    return ",".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in point.items())


def _load_delta(delta: Any, where: str) -> dict[str, Any]:
    if isinstance(delta, dict):
        return delta
    if isinstance(delta, str):
        path = Path(delta)
        if not path.is_file():
            raise ValueError(f"{where}: delta file {delta!r} does not exist")
        loaded = yaml.safe_load(path.read_text())
        if not isinstance(loaded, dict):
            raise ValueError(f"{where}: delta file {delta!r} must hold a YAML mapping")
        return loaded
    raise ValueError(f"{where}: 'delta' must be a mapping or a YAML file path, got {type(delta).__name__}")


def _variants(raw: Any, source: str) -> list[SweepRun]:
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{source}: 'variants' must be a non-empty list of {{name, delta}}")
    runs = []
    for index, item in enumerate(raw):
        where = f"{source}: variants[{index}]"
        if not isinstance(item, dict) or set(item) - {"name", "delta"} or "name" not in item:
            raise ValueError(f"{where}: expected {{name: str, delta: mapping or file}}, got {item!r}")
        runs.append(SweepRun(safe_run_name(str(item["name"])), _load_delta(item.get("delta", {}), where)))
    return runs


def _grid(raw: Any, source: str) -> list[SweepRun]:
    if (not isinstance(raw, dict) or not raw
            or not all(isinstance(v, list) and v for v in raw.values())):
        raise ValueError(f"{source}: 'grid' must map dotted keys to non-empty lists of values")
    runs = []
    for values in itertools.product(*raw.values()):
        point = dict(zip(raw.keys(), values))
        runs.append(SweepRun(safe_run_name(_grid_point_name(point)), dotted_to_nested(point)))
    return runs


def expand_runs(variants: list[SweepRun] | None, grid: list[SweepRun] | None) -> list[SweepRun]:
    if variants and grid:
        return [SweepRun(f"{v.name}+{g.name}", deep_merge(v.delta, g.delta)) for v in variants for g in grid]
    return list(variants or grid or [])


def parse_sweep_spec(raw: dict[str, Any], source: str = "sweep spec") -> SweepSpec:
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a YAML mapping")
    unknown = set(raw) - _SPEC_KEYS
    if unknown:
        raise ValueError(f"{source}: unknown keys {sorted(unknown)}; allowed: {sorted(_SPEC_KEYS)}")
    base = raw.get("base")
    if isinstance(base, str):
        base = [base]
    if not isinstance(base, list) or not base or not all(isinstance(b, str) for b in base):
        raise ValueError(f"{source}: 'base' must be a config path or a non-empty list of them")
    missing = [b for b in base if not Path(b).is_file()]
    if missing:
        raise ValueError(f"{source}: base config(s) not found: {missing}")
    args = raw.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ValueError(f"{source}: 'args' must be a list of CLI argument strings")
    if "variants" not in raw and "grid" not in raw:
        raise ValueError(f"{source}: give 'variants' (YAML deltas) and/or 'grid' (dotted key -> values)")
    variants = _variants(raw["variants"], source) if "variants" in raw else None
    grid = _grid(raw["grid"], source) if "grid" in raw else None
    runs = expand_runs(variants, grid)
    names = [run.name for run in runs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{source}: run names must be unique, repeated: {duplicates}")
    name = str(raw.get("name") or Path(source).stem)
    validate = raw.get("validate", True)
    if not isinstance(validate, bool):
        raise ValueError(f"{source}: 'validate' must be true or false")
    return SweepSpec(name=name, out_dir=Path(raw.get("out_dir") or f"runs/sweeps/{name}"),
                     base=[Path(b) for b in base], runs=runs, args=list(args), validate=validate)


def load_sweep_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep spec {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exn:
        raise ValueError(f"{path}: not valid YAML: {exn}") from exn
    return parse_sweep_spec(raw, str(path))
