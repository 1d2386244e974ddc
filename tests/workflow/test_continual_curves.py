"""Continual results read back from a run directory equal what the run wrote."""

from __future__ import annotations

import pytest

from mmpretrain.eval.continual import Evaluation, summarize, write_results
from mmpretrain.workflow.continual_curves import accuracy_matrix, method_curves, read_evaluations

TASK_SETS = {"task_a": 0, "task_b": 1}


def _evaluations() -> list[Evaluation]:
    raw = [(0, 0, "start", 0.10, 0.05, 0.70), (2, 0, "probe", 0.30, 0.10, 0.55),
           (4, 0, "end", 0.60, 0.15, 0.65), (6, 1, "probe", 0.50, 0.40, 0.60), (8, 1, "end", 0.45, 0.80, 0.62)]
    return [summarize(Evaluation(step, task, phase, {"task_a": a, "task_b": b, "heldout": h}), TASK_SETS, ["heldout"])
            for step, task, phase, a, b, h in raw]


def test_read_evaluations_round_trips_write_results(tmp_path):
    written = _evaluations()
    write_results(tmp_path / "continual", written, ["a", "b"], steps_per_task=4)
    read = read_evaluations(tmp_path)
    assert [(e.step, e.task, e.phase) for e in read] == [(e.step, e.task, e.phase) for e in written]
    for got, want in zip(read, written):
        assert got.accuracy == pytest.approx(want.accuracy)
        assert (got.a_ka is None) == (want.a_ka is None) and got.a_zs == pytest.approx(want.a_zs)
    # after task 1: A_KA = mean(task_a, task_b) = 0.625, A_ZS = 0.62
    assert read[-1].a_ka == pytest.approx(0.625) and read[-1].gm == pytest.approx((0.625 * 0.62) ** 0.5)
    labels, sets, values = accuracy_matrix(read)
    assert labels == ["start", "after task 0", "after task 1"] and sets == ["heldout", "task_a", "task_b"]
    assert values[1] == pytest.approx([0.65, 0.60, 0.15])
    assert len(method_curves({"run": read}).axes) == 2


def test_missing_results_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no continual evaluations"):
        read_evaluations(tmp_path)
