"""Factored head losses and action metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from mmpretrain.data.sources.action_space import ActionAxis, ActionChoice, ActionSpace
from mmpretrain.eval.action import action_metrics, binary_f1, r2_score
from mmpretrain.losses.action import FactoredActionLoss
from mmpretrain.models.robot import chunk_targets

# 3 bins over ±10: step 10, so x=0 -> bin 1, x=5 -> v=7.47 -> bin 2
SPACE = ActionSpace(buttons=["jump"], axes=[ActionAxis("x", 10.0, 10.0, 3)], choices=[ActionChoice("tool", 2)])


def _out(button, axis, choice, regression=None):
    out = {"buttons": torch.tensor(button).view(-1, 1), "axes": [torch.tensor(axis)], "choices": [torch.tensor(choice)]}
    if regression is not None:
        out["regression"] = torch.tensor(regression).view(-1, 1)
    return out


def test_uniform_logits_give_log_class_counts():
    out = _out([0.0], [[0.0, 0.0, 0.0]], [[0.0, 0.0]], regression=[0.0])
    terms = FactoredActionLoss(SPACE)(out, torch.tensor([[1.0, 5.0, 0.0]]), torch.tensor([True]))
    assert terms["buttons"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert terms["axes"].item() == pytest.approx(math.log(3), abs=1e-6)
    assert terms["choices"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert terms["regression"].item() == pytest.approx(0.25, abs=1e-6)  # (0 - 5/10)^2
    assert terms["loss"].item() == pytest.approx(2 * math.log(2) + math.log(3) + 0.25, abs=1e-6)


def test_hand_computed_logits_and_masked_steps_are_ignored():
    out = _out([2.0, -7.0], [[0.0, 1.0, 0.0], [9.0, -9.0, 3.0]], [[1.0, 0.0], [5.0, -5.0]])
    targets = torch.tensor([[1.0, 0.0, 1.0], [1.0, 10.0, 1.0]])
    terms = FactoredActionLoss(SPACE, choice_weight=2.0)(out, targets, torch.tensor([True, False]))
    button = math.log1p(math.exp(-2.0))            # -ln sigmoid(2)
    axis = math.log(2 + math.e) - 1.0              # target bin 1 of logits [0, 1, 0]
    choice = math.log(1 + math.e)                  # target class 1 of logits [1, 0]
    assert terms["buttons"].item() == pytest.approx(button, abs=1e-5)
    assert terms["axes"].item() == pytest.approx(axis, abs=1e-5)
    assert terms["choices"].item() == pytest.approx(choice, abs=1e-5)
    assert terms["loss"].item() == pytest.approx(button + axis + 2 * choice, abs=1e-5)


def test_out_of_range_choice_is_a_clear_error():
    out = _out([0.0], [[0.0, 0.0, 0.0]], [[0.0, 0.0]])
    with pytest.raises(ValueError, match="outside"):
        FactoredActionLoss(SPACE)(out, torch.tensor([[1.0, 0.0, 2.0]]), torch.tensor([True]))


def test_chunk_targets_shift_and_mask():
    actions = torch.arange(4.0).view(1, 4, 1)
    mask = torch.tensor([[True, True, False, True]])
    targets, chunk_mask = chunk_targets(actions, mask, chunk=2)
    assert targets[0, :, :, 0].tolist() == [[0, 1], [1, 2], [2, 3], [3, 0]]
    assert chunk_mask[0].tolist() == [[True, True], [True, False], [False, True], [True, False]]


def test_metrics_hand_computed():
    true = torch.tensor([[1.0, 0.0, 0.0], [0.0, 5.0, 1.0], [1.0, -5.0, 1.0], [0.0, 0.0, 0.0]])
    pred = torch.tensor([[1.0, 0.0, 0.0], [1.0, 5.8, 1.0], [0.0, -5.0, 0.0], [0.0, 9.0, 0.0]])
    metrics = action_metrics(SPACE, pred, true)
    # buttons: pred [1,1,0,0] vs true [1,0,1,0] -> acc 0.5, tp=1 fp=1 fn=1 -> F1 0.5
    assert metrics["button_jump_acc"] == 0.5 and metrics["button_jump_f1"] == 0.5
    # bins: true [1, 2, 0, 1], pred [1, 2, 0, 2] -> 3/4
    assert metrics["axis_x_bin_acc"] == 0.75
    ss_res = 0.8 ** 2 + 9.0 ** 2
    assert metrics["axis_x_r2"] == pytest.approx(1 - ss_res / 50.0, abs=1e-5)  # ss_tot = 25 + 25
    assert metrics["choice_tool_acc"] == 0.75  # true [0, 1, 1, 0], pred [0, 1, 0, 0]
    assert metrics["exact_match"] == 0.25  # only the first step is right on every head
    assert binary_f1(torch.zeros(3), torch.zeros(3)) == 1.0 and math.isnan(r2_score(torch.ones(2), torch.ones(2)))
