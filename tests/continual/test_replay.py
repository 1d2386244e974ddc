"""ReservoirBuffer: uniform reservoir, only past tasks replayed, deterministic, resumable."""

from __future__ import annotations

import pytest
import torch

from mmpretrain.continual.replay import ReservoirBuffer


def _rows(start: int, count: int) -> dict[str, torch.Tensor]:
    ids = torch.arange(start, start + count)
    return {"image": ids.float().view(-1, 1, 1, 1).expand(-1, 3, 2, 2).clone(), "text": ids.view(-1, 1).repeat(1, 4)}


def test_fills_then_keeps_a_uniform_sample():
    kept = torch.zeros(400)
    for seed in range(60):
        buffer = ReservoirBuffer(capacity=40, seed=seed)
        for step in range(20):
            buffer.add(_rows(step * 20, 20), task=0)
        assert len(buffer) == 40 and buffer.seen == 400
        kept[buffer.entries["text"][:, 0]] += 1
    # every one of the 400 samples is kept with probability 40/400: early and late alike
    first, last = kept[:200].sum() / (60 * 40), kept[200:].sum() / (60 * 40)
    assert abs(first - 0.5) < 0.06 and abs(last - 0.5) < 0.06


def test_samples_only_tasks_before_the_current_one():
    buffer = ReservoirBuffer(capacity=64, seed=1)
    buffer.add(_rows(0, 16), task=0)
    buffer.add(_rows(100, 16), task=1)
    drawn = buffer.sample(200, before_task=1, draw=5)
    assert drawn["text"][:, 0].max() < 16 and (drawn["task"] == 0).all()
    assert set(buffer.sample(400, before_task=2, draw=6)["task"].tolist()) == {0, 1}
    assert torch.equal(buffer.sample(8, 2, draw=7)["text"], buffer.sample(8, 2, draw=7)["text"])
    with pytest.raises(RuntimeError, match="no sample of a task before task 0"):
        buffer.sample(4, before_task=0, draw=0)


def test_state_round_trip_continues_identically():
    straight, resumed = ReservoirBuffer(32, seed=3), ReservoirBuffer(32, seed=3)
    for step in range(6):
        straight.add(_rows(step * 16, 16), task=step // 2)
    for step in range(3):
        resumed.add(_rows(step * 16, 16), task=step // 2)
    state = resumed.state_dict()
    restored = ReservoirBuffer(32, seed=3)
    restored.load_state_dict(state)
    for step in range(3, 6):
        restored.add(_rows(step * 16, 16), task=step // 2)
    assert torch.equal(restored.entries["text"], straight.entries["text"])
    assert torch.equal(restored.task_N, straight.task_N)
    with pytest.raises(ValueError, match="buffer_size"):
        ReservoirBuffer(16).load_state_dict(state)
