"""Stream LR schedules: values pinned against the spec's formulas worked out by hand (S = 20
steps per task, W = C = 2, eta_min = 1e-3, eta_max = 1), continuity, meta peaks, infinite
schedule and its anneal branch, and ContinualLR as an optimizer scheduler (resume, binding)."""

from __future__ import annotations

import math

import pytest
import torch
from jsonargparse import ArgumentParser
from lightning.pytorch.cli import LRSchedulerCallable

from mmpretrain.continual.schedules import (
    SCHEDULE_NAMES,
    ContinualLR,
    ContinualSchedule,
    cosine_meta_peak,
    phase_steps,
    rsqrt_meta_peak,
    schedule_curve,
    task_position,
)

S, ETA_MIN = 20, 1e-3


def _curve(schedule: str, steps: int = 3 * S, **kwargs) -> list[float]:
    return schedule_curve(ContinualSchedule(schedule, S, **kwargs), steps)


def test_phase_lengths_are_ceil_of_fraction_without_float_error():
    assert phase_steps(30, 0.1) == 3  # 0.1 * 30 = 3.0000000000000004 in floats
    assert phase_steps(25, 0.1) == 3
    assert phase_steps(20, 0.1) == 2


def test_cosine_rewarmed_values_pinned():
    lrs = _curve("cosine")
    assert lrs[0] == pytest.approx(0.5)  # (0+1)/W
    assert lrs[1] == pytest.approx(1.0)
    # n = 2: eta_min + 0.5 (1 + cos(pi/18)) (1 - eta_min), cos(pi/18) = 0.98480775
    assert lrs[2] == pytest.approx(0.001 + 0.5 * 1.98480775 * 0.999)
    assert lrs[10] == pytest.approx(0.5005)  # progress 9/18 = 1/2: midway eta_min..eta_max
    assert lrs[19] == pytest.approx(ETA_MIN)  # last step of the task reaches eta_min
    assert lrs[20:40] == pytest.approx(lrs[0:20])  # re-warmed identically for task 1
    assert lrs[40] == pytest.approx(0.5)


def test_rsqrt_values_pinned():
    lrs = _curve("rsqrt")
    assert lrs[:2] == pytest.approx([0.5, 1.0])
    assert lrs[2] == pytest.approx(1.0)  # sqrt(W/W) = 1
    assert lrs[8] == pytest.approx(0.001 + 0.5 * 0.999)  # sqrt(2/8) = 1/2
    assert lrs[17] == pytest.approx(0.001 + math.sqrt(2 / 17) * 0.999)
    body_at_cooldown = 0.001 + (1 / 3) * 0.999  # sqrt(2/18)
    assert lrs[18] == pytest.approx(body_at_cooldown)  # cooldown starts from the body value
    assert lrs[19] == pytest.approx(body_at_cooldown / 2)  # ... falling linearly towards 0
    assert lrs[20] == pytest.approx(0.5)  # next task re-warms


def test_meta_peaks_match_formulas_and_decrease():
    # cosine t = 1: cos(pi 19/36) = cos(95 deg) = -0.08715574
    assert cosine_meta_peak(1, S, 2, 1.0, ETA_MIN) == pytest.approx(
        0.001 + 0.5 * (1 - 0.08715574) * 0.999)
    # rsqrt t = 1: sqrt(2 * 2 / (20 + 2))
    assert rsqrt_meta_peak(1, S, 2, 1.0, ETA_MIN) == pytest.approx(
        0.001 + math.sqrt(4 / 22) * 0.999)
    assert rsqrt_meta_peak(0, S, 2, 1.0, ETA_MIN) == pytest.approx(1.0)
    for peak in (cosine_meta_peak, rsqrt_meta_peak):
        peaks = [peak(t, S, 2, 1.0, ETA_MIN) for t in range(10)]
        assert peaks[0] == pytest.approx(1.0, abs=0.01)
        assert all(a > b for a, b in zip(peaks, peaks[1:]))
        assert all(p > ETA_MIN for p in peaks)


@pytest.mark.parametrize("schedule, base, peak_fn", [("cosine_meta", "cosine", cosine_meta_peak),
                                                     ("rsqrt_meta", "rsqrt", rsqrt_meta_peak)])
def test_meta_schedule_is_base_shape_with_lowered_peak(schedule, base, peak_fn):
    meta, plain = _curve(schedule, 4 * S), _curve(base, 4 * S)
    for task in range(4):
        peak = peak_fn(task, S, 2, 1.0, ETA_MIN)
        assert meta[task * S + 1] == pytest.approx(peak)  # end of warmup reaches peak_t
        for n in range(S):
            if n < 2:
                expected = peak * (n + 1) / 2
            elif base == "rsqrt" and n >= S - 2:
                body = ETA_MIN + math.sqrt(2 / (S - 2)) * (peak - ETA_MIN)
                expected = body * (S - n) / 2
            else:  # same shape: (lr - eta_min) scales by (peak_t - eta_min)
                expected = ETA_MIN + (plain[n] - ETA_MIN) * (peak - ETA_MIN) / (1 - ETA_MIN)
            assert meta[task * S + n] == pytest.approx(expected), (task, n)


def test_infinite_schedule_warmup_cooldown_constant():
    lrs = _curve("infinite", 10 * S, infinite_const_ratio=0.5)
    assert lrs[:2] == pytest.approx([0.5, 1.0])
    assert lrs[10] == pytest.approx(0.75)  # cooldown (N_cd = S - W = 18) half way: progress 9/18
    assert lrs[19] == pytest.approx(0.5)  # reaches eta_const at the end of the cooldown
    assert lrs[19:] == pytest.approx([0.5] * (10 * S - 19))  # no re-warming, ever


def test_infinite_anneal_branch_leaves_main_run_untouched():
    main = _curve("infinite", 80, infinite_const_ratio=0.5)
    branch = _curve("infinite", 80, infinite_const_ratio=0.5, infinite_anneal_start=40,
                    infinite_anneal_steps=10)
    assert branch[:40] == pytest.approx(main[:40])
    assert branch[40] == pytest.approx(0.5)
    assert branch[45] == pytest.approx(0.5 * 0.002 ** 0.5)  # eta_const (eta_min/eta_const)^(1/2)
    assert branch[50] == pytest.approx(ETA_MIN)
    assert branch[79] == pytest.approx(ETA_MIN)
    assert all(a > b for a, b in zip(branch[40:51], branch[41:51]))
    with pytest.raises(ValueError, match="constant phase"):
        ContinualSchedule("infinite", S, infinite_anneal_start=5, infinite_anneal_steps=10)
    with pytest.raises(ValueError, match="infinite_anneal_steps"):
        ContinualSchedule("infinite", S, infinite_anneal_start=40)


def test_infinite_explicit_phase_lengths():
    lrs = _curve("infinite", 60, infinite_warmup_steps=5, infinite_cooldown_steps=30,
                 infinite_const_ratio=0.25)
    assert lrs[4] == pytest.approx(1.0)
    assert lrs[34] == pytest.approx(0.25)
    assert lrs[20] == pytest.approx(0.25 + 0.5 * (1 + math.cos(math.pi * 16 / 30)) * 0.75)


def test_constant_warms_up_once():
    lrs = _curve("constant")
    assert lrs[:2] == pytest.approx([0.5, 1.0])
    assert lrs[2:] == pytest.approx([1.0] * (3 * S - 2))


@pytest.mark.parametrize("schedule", SCHEDULE_NAMES)
def test_continuous_inside_tasks_and_bounded(schedule):
    steps = 100
    lrs = schedule_curve(ContinualSchedule(schedule, steps), 3 * steps)
    warmup = phase_steps(steps, 0.1)
    for step in range(len(lrs) - 1):
        if (step + 1) % steps == 0:
            continue  # a task boundary may re-warm
        assert abs(lrs[step + 1] - lrs[step]) <= 1.0 / warmup + 1e-9, step
    assert all(0.0 < lr <= 1.0 + 1e-12 for lr in lrs)


def test_cosine_decay_is_smooth():
    lrs = schedule_curve(ContinualSchedule("cosine", 100), 100)
    jumps = [abs(b - a) for a, b in zip(lrs[10:], lrs[11:])]
    assert max(jumps) <= math.pi / (2 * 90) + 1e-9


def test_task_position_with_per_task_budgets():
    lengths = (10, 20)
    assert task_position(9, lengths) == task_position(9, 10)
    assert (task_position(10, lengths).task, task_position(10, lengths).step) == (1, 0)
    assert task_position(29, lengths).step == 19
    past = task_position(55, lengths)  # past the stream: more tasks of the last length
    assert (past.task, past.step, past.length) == (3, 5, 20)
    lrs = schedule_curve(ContinualSchedule("cosine", lengths), 30)
    assert lrs[9] == pytest.approx(ETA_MIN) and lrs[29] == pytest.approx(ETA_MIN)
    assert lrs[10:12] == pytest.approx([0.5, 1.0])


def _run(scheduler: ContinualLR, steps: int) -> list[float]:
    """The lr of ``steps`` consecutive optimizer steps, starting at the scheduler's current one."""
    lrs = [scheduler.get_last_lr()[0]]
    while len(lrs) < steps:
        scheduler.optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    return lrs


def _optimizer(lr: float = 2e-4) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_lambda_lr_scales_base_lr_and_resumes_from_weights_only_state(tmp_path):
    sched = ContinualLR(_optimizer(), "rsqrt_meta", steps_per_task=S)
    lrs = _run(sched, 30)
    assert lrs == pytest.approx([2e-4 * m for m in _curve("rsqrt_meta", 30)])
    torch.save(sched.state_dict(), tmp_path / "sched.pt")
    resumed = ContinualLR(_optimizer(), "rsqrt_meta", steps_per_task=S)
    resumed.load_state_dict(torch.load(tmp_path / "sched.pt", weights_only=True))
    assert resumed.last_epoch == 29
    assert _run(resumed, 10) == pytest.approx(_run(sched, 10))


def test_steps_per_task_bound_later_rewrites_current_lr():
    sched = ContinualLR(_optimizer(1.0), "cosine")
    with pytest.raises(ValueError, match="steps_per_task was never set"):
        _run(sched, 3)
    sched = ContinualLR(_optimizer(1.0), "cosine")
    sched.set_steps_per_task([S, S])
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
    assert _run(sched, 2 * S) == pytest.approx(_curve("cosine", 2 * S))


@pytest.mark.parametrize("kwargs, match", [
    ({"schedule": "linear"}, "schedule must be one of"),
    ({"steps_per_task": 1}, "steps_per_task must be"),
    ({"steps_per_task": [10, 0]}, "steps_per_task must be"),
    ({"warmup_fraction": 0.0}, "warmup_fraction"),
    ({"schedule": "rsqrt", "steps_per_task": 4, "warmup_fraction": 0.5,
      "cooldown_fraction": 0.5}, "no room"),
    ({"schedule": "infinite", "infinite_const_ratio": 2.0}, "infinite_const_ratio"),
])
def test_bad_options_raise_one_clear_error(kwargs, match):
    options = {"steps_per_task": S, **kwargs}
    with pytest.raises(ValueError, match=match):
        ContinualLR(_optimizer(), **options)


def test_usable_as_lr_scheduler_callable_from_config():
    parser = ArgumentParser()
    parser.add_argument("--lr_scheduler", type=LRSchedulerCallable)
    cfg = parser.parse_args(["--lr_scheduler", '{"class_path": "mmpretrain.continual.ContinualLR",'
                             ' "init_args": {"schedule": "cosine_meta", "steps_per_task": 20}}'])
    factory = parser.instantiate_classes(cfg).lr_scheduler
    sched = factory(_optimizer(1.0))
    assert isinstance(sched, ContinualLR) and sched.steps_per_task == 20
    assert _run(sched, 40)[21] == pytest.approx(cosine_meta_peak(1, S, 2, 1.0, ETA_MIN))


def test_release_branch_resumes_from_a_main_run_state():
    main = ContinualLR(_optimizer(1.0), "infinite", steps_per_task=S)
    _run(main, 41)  # now at step 40, in the constant phase
    branch = ContinualLR(_optimizer(1.0), "infinite", steps_per_task=S, infinite_anneal_start=40,
                         infinite_anneal_steps=10)
    branch.load_state_dict(main.state_dict())
    expected = _curve("infinite", 51, infinite_anneal_start=40, infinite_anneal_steps=10)[40:]
    assert _run(branch, 11) == pytest.approx(expected)
    assert _run(main, 11) == pytest.approx([0.5] * 11)  # the main run is unaffected
