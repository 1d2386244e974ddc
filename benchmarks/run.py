"""Run benchmark suites, print their tables and write one JSON file per suite plus a summary.

    python benchmarks/run.py --out benchmarks/results                 # every suite
    python benchmarks/run.py --suites loader,train_step --rounds 3    # a selection

A suite is a module `benchmarks.<name>` with `run(**options) -> dict`; it receives the options
its signature names (`device`, `rounds`, `quick`, `shards_root`, `out_dir`) and returns a
JSON-serialisable dict (with a printed `table` where it has one). Add a suite by adding its
name to SUITES. A suite whose module is absent (an optional one) is reported as skipped.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import machine_info, resolve_device, write_json  # noqa: E402

SUITES = ("loader", "train_step", "attention", "cabs")
# a suite whose run() takes one of these parameters is run once per value
SWEEPS = {"cabs": {"super_batch_size": (1280, 5120, 20480)}}


def load_suite(name: str):
    """The suite's module, or None when its file does not exist."""
    if not (REPO_ROOT / "benchmarks" / f"{name}.py").exists():
        return None
    return importlib.import_module(f"benchmarks.{name}")


def call_suite(name: str, module, options: dict[str, Any]) -> dict[str, Any]:
    parameters = inspect.signature(module.run).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    accepted = {k: v for k, v in options.items() if takes_any or k in parameters}
    sweeps = {k: v for k, v in SWEEPS.get(name, {}).items() if k in parameters}
    if not sweeps:
        return module.run(**accepted)
    (key, values), = sweeps.items()
    runs = []
    for value in values:
        print(f"  {name}: {key}={value}", flush=True)
        result = module.run(**accepted, **{key: value})
        print("    " + json.dumps(result, default=str)[:400], flush=True)
        runs.append({key: value, "result": result})
    return {"sweep": key, "runs": runs}


def headline_ratios(results: dict[str, Any]) -> list[str]:
    lines = []
    for suite in ("loader", "train_step"):
        for case in results.get(suite, {}).get("cases", []):
            ratio = case.get("ratio", {}).get("median_of_round_ratios")
            if ratio is not None:
                lines.append(f"{suite:10s} {case['case']['name']:30s} mmpretrain / open_clip = {ratio:.2f}x")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results", help="directory for the JSON results")
    parser.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated subset of {SUITES}")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved rounds per comparison (order alternates: A B, B A, ...)")
    parser.add_argument("--quick", action="store_true", help="fewer cases (a smoke run)")
    parser.add_argument("--shards", default=None,
                        help="directory for the generated benchmark shards (default: OUT/shards)")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.suites.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; choose from {SUITES}")
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    out = Path(args.out)
    options = {"device": resolve_device(args.device), "rounds": args.rounds, "quick": args.quick,
               "shards_root": Path(args.shards) if args.shards else out / "shards", "out_dir": out}
    machine = machine_info()
    print(f"machine: {machine['nproc']} x {machine['cpu_model']}, cuda: {machine['cuda_device']}, "
          f"torch {machine['torch']}, open_clip {machine['open_clip']}, load(1m) {machine['loadavg_1m']}")
    summary: dict[str, Any] = {"machine": machine, "options": {k: str(v) for k, v in options.items()},
                               "suites": {}}
    results: dict[str, Any] = {}
    failed = False
    for name in names:
        module = load_suite(name)
        if module is None:
            print(f"\n== {name}: skipped (benchmarks/{name}.py not present)")
            summary["suites"][name] = "skipped: module not present"
            continue
        print(f"\n== {name}", flush=True)
        start = time.perf_counter()
        try:
            results[name] = call_suite(name, module, options)
        except Exception:  # noqa: BLE001 - one failing suite must not hide the others' figures
            failed = True
            print(f"suite {name} failed:\n{traceback.format_exc()}", file=sys.stderr)
            summary["suites"][name] = "failed"
            continue
        results[name]["wall_s"] = time.perf_counter() - start
        results[name]["machine"] = machine
        write_json(out / f"{name}.json", results[name])
        summary["suites"][name] = {"wall_s": results[name]["wall_s"], "json": str(out / f"{name}.json")}
    summary["headline"] = headline_ratios(results)
    write_json(out / "summary.json", summary)
    print("\n== ratios (median of per-round ratios, > 1 means mmpretrain is faster)")
    for line in summary["headline"]:
        print("  " + line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
