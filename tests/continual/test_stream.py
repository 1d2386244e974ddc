"""TaskStream: orderings, path resolution, task of a step, config errors."""

from __future__ import annotations

import pytest

from mmpretrain.continual.stream import StreamTask, TaskStream

TASKS = [StreamTask("a", "a/train", "a/eval", score=0.2), StreamTask("b", "b/train", score=0.9),
         StreamTask("c", "/abs/c::c/extra", score=0.5)]


def _names(stream: TaskStream) -> list[str]:
    return [t.name for t in stream.ordered_tasks()]


def test_orderings():
    assert _names(TaskStream(TASKS)) == ["a", "b", "c"]
    assert _names(TaskStream(TASKS, order="reversed")) == ["c", "b", "a"]
    assert _names(TaskStream(TASKS, order="score")) == ["b", "c", "a"]
    assert _names(TaskStream(TASKS, order="score", score_descending=False)) == ["a", "c", "b"]
    shuffled = [_names(TaskStream(TASKS, order="random", order_seed=s)) for s in range(8)]
    assert all(sorted(names) == ["a", "b", "c"] for names in shuffled)
    assert len({tuple(n) for n in shuffled}) > 1  # the seed matters
    assert shuffled[3] == _names(TaskStream(TASKS, order="random", order_seed=3))  # and is deterministic


def test_paths_resolve_against_root_per_source():
    tasks = TaskStream(TASKS, root="/data/stream", heldout=["held", "/abs/held"]).ordered_tasks()
    assert tasks[0].train == "/data/stream/a/train" and tasks[0].eval == "/data/stream/a/eval"
    assert tasks[1].eval is None
    assert tasks[2].train == "/abs/c::/data/stream/c/extra"
    assert TaskStream(TASKS, root="/r", heldout=["held", "/abs/held"]).heldout_specs() == ["/r/held", "/abs/held"]


def test_task_of_a_step():
    stream = TaskStream(TASKS, steps_per_task=10)
    assert stream.total_steps == 30
    assert [stream.task_at_step(s) for s in (0, 9, 10, 29, 30)] == [0, 0, 1, 2, 2]
    assert [stream.step_in_task(s) for s in (0, 9, 10, 25)] == [0, 9, 0, 5]


@pytest.mark.parametrize("kwargs, message", [
    ({"tasks": []}, "at least one task"),
    ({"tasks": TASKS, "steps_per_task": 0}, "steps_per_task"),
    ({"tasks": TASKS[:1] * 2}, "unique"),
    ({"tasks": [StreamTask("x", "x")], "order": "score"}, "score on every task"),
    ({"tasks": TASKS, "order": "sorted"}, "given|random|reversed|score"),
])
def test_bad_streams_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TaskStream(**kwargs)
