"""Benchmark harness logic (no timing is asserted: speed claims live in BENCHMARKS.md)."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from benchmarks import run as bench_run
from benchmarks.common import interleave, paired_ratio
from benchmarks.shards import shard_pattern


def test_interleave_alternates_order_and_collects_every_round():
    calls = []
    trials = {name: (lambda name=name: calls.append(name) or {"v": float(len(calls))}) for name in ("a", "b")}
    results = interleave(trials, rounds=3, log=lambda _: None)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert [r["v"] for r in results["a"]] == [1.0, 4.0, 5.0]


def test_paired_ratio_uses_per_round_pairs():
    ratio = paired_ratio([10.0, 30.0, 12.0], [5.0, 10.0, 6.0])
    assert ratio["per_round"] == [2.0, 3.0, 2.0]
    assert ratio["median_of_round_ratios"] == 2.0
    assert ratio["ratio_of_medians"] == pytest.approx(12.0 / 6.0)


def test_shard_pattern_is_open_clip_brace_syntax(tmp_path: Path):
    for i in range(3):
        (tmp_path / f"shard-{i:06d}.tar").write_bytes(b"")
    assert shard_pattern(tmp_path) == str(tmp_path / "shard-{000000..000002}.tar")
    with pytest.raises(FileNotFoundError):
        shard_pattern(tmp_path / "missing")


def test_call_suite_passes_only_accepted_options_and_sweeps():
    seen = []

    def run(super_batch_size: int = 1, rounds: int = 1):
        seen.append((super_batch_size, rounds))
        return {"size": super_batch_size}

    module = types.SimpleNamespace(run=run)
    result = bench_run.call_suite("cabs", module, {"rounds": 2, "device": "cpu"})
    assert seen == [(size, 2) for size in bench_run.SWEEPS["cabs"]["super_batch_size"]]
    assert [r["result"]["size"] for r in result["runs"]] == list(bench_run.SWEEPS["cabs"]["super_batch_size"])
    plain = types.SimpleNamespace(run=lambda **options: dict(options))
    assert bench_run.call_suite("loader", plain, {"rounds": 2}) == {"rounds": 2}


def test_missing_optional_suite_is_reported_not_imported():
    assert bench_run.load_suite("no_such_suite") is None
