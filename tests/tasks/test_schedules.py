import math

import pytest
import torch

from mmpretrain.tasks.schedules import WarmupConstantLR, WarmupCosineLR, warmup_cosine_factor


def _lrs(scheduler, steps):
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return lrs


def _optimizer(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_warmup_cosine_values_pinned():
    sched = WarmupCosineLR(_optimizer(2.0), warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
    lrs = _lrs(sched, 15)
    assert lrs[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    # step 9: halfway through the 10 decay steps -> midpoint between peak and floor
    assert lrs[9] == pytest.approx(2.0 * (0.1 + 0.5 * 0.9))
    assert lrs[14] == pytest.approx(0.2)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))


def test_cosine_formula_matches_closed_form():
    for step in range(10, 100, 7):
        expected = 0.5 * (1 + math.cos(math.pi * (step - 10) / 90))
        assert warmup_cosine_factor(step, 10, 100) == pytest.approx(expected)


def test_total_steps_filled_lazily_keeps_warmup():
    sched = WarmupCosineLR(_optimizer(1.0), warmup_steps=2)
    assert sched.total_steps is None
    sched.total_steps = 4
    assert _lrs(sched, 5) == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.0])


def test_warmup_constant():
    sched = WarmupConstantLR(_optimizer(3.0), warmup_steps=3)
    assert _lrs(sched, 6) == pytest.approx([1.0, 2.0, 3.0, 3.0, 3.0, 3.0])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupCosineLR(_optimizer(), warmup_steps=-1)
    with pytest.raises(ValueError, match="min_lr_ratio"):
        WarmupCosineLR(_optimizer(), min_lr_ratio=2.0)
