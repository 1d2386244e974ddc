"""Axis quantization against hand-computed values — mu-law (VPT camera) and uniform (OpenVLA
action tokens) — and action-space plumbing."""

from __future__ import annotations

import math

import pytest
import torch

from mmpretrain.data.sources.action_space import (ActionAxis, ActionChoice, ActionSpace, dequantize_axis,
                                                  quantize_axis, uniform_axes_from_data)

AXIS = ActionAxis("camera", max_value=10.0, mu=10.0, bins=11)


def test_quantize_hand_computed_bins():
    # v = ln(1 + x)/ln(11) * 10 for x in [0, 10]; bin = round((v + 10) / 2)
    # x=1: v = 2.8906 -> 6.445 -> 6; x=5: v = 7.4722 -> 8.736 -> 9; x=25 is clipped to 10 -> 10
    x = torch.tensor([-25.0, -10.0, -5.0, -1.0, 0.0, 1.0, 5.0, 10.0, 25.0])
    assert quantize_axis(x, AXIS).tolist() == [0, 0, 1, 4, 5, 6, 9, 10, 10]


def test_dequantize_hand_computed_centres():
    # centre of bin b: v = 2b - 10, x = sign(v) (11^{|v|/10} - 1)
    expected = [math.copysign(11 ** (abs(2 * b - 10) / 10) - 1, 2 * b - 10) for b in range(11)]
    assert expected[6] == pytest.approx(0.6154, abs=1e-4) and expected[9] == pytest.approx(5.8095, abs=1e-4)
    assert dequantize_axis(torch.arange(11), AXIS).tolist() == pytest.approx(expected, abs=1e-5)


def test_round_trip_is_exact_on_bin_centres_and_bounded_elsewhere():
    bins = torch.arange(11)
    assert quantize_axis(dequantize_axis(bins, AXIS), AXIS).tolist() == bins.tolist()
    x = torch.linspace(-10, 10, 2001)
    decoded = dequantize_axis(quantize_axis(x, AXIS), AXIS)
    # bin edges sit at v = odd: |x| < 11^0.1 - 1 = 0.2710 decodes to 0, and the widest bin's
    # edge to its centre is 10 - (11^0.9 - 1) = 2.3451 (mu-law spends resolution near 0)
    assert decoded[x.abs() < 0.2709].abs().max() == 0
    assert decoded[(x > 0.2711) & (x < 1.0)].unique().tolist() == pytest.approx([11 ** 0.2 - 1], abs=1e-5)
    assert (decoded - x).abs().max() == pytest.approx(10 - (11 ** 0.9 - 1), abs=0.02)


def test_action_space_split_join_and_json_round_trip():
    space = ActionSpace(buttons=["a", "b"], axes=[AXIS], choices=[ActionChoice("tool", 4)])
    actions = torch.tensor([[1.0, 0.0, 5.0, 3.0]])
    buttons, axes, choices = space.split(actions)
    assert buttons.tolist() == [[1.0, 0.0]] and axes.tolist() == [[5.0]] and choices.tolist() == [[3]]
    assert space.join(buttons, axes, choices).tolist() == actions.tolist()
    assert ActionSpace.from_json(space.to_json()) == space
    with pytest.raises(ValueError, match="columns"):
        space.split(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="unique"):
        ActionSpace(buttons=["a"], choices=[{"name": "a", "num_classes": 2}])
    with pytest.raises(ValueError, match="odd"):
        ActionAxis("x", bins=10)


UNIFORM = ActionAxis("torque", bins=4, quantization="uniform", low=-1.0, high=3.0)


def test_uniform_tokens_hand_computed_bins_and_centres():
    # bin edges -1, 0, 1, 2, 3; values outside the bounds clip into the end bins
    x = torch.tensor([-5.0, -1.0, -0.5, 0.0, 0.99, 1.0, 2.5, 3.0, 10.0])
    assert quantize_axis(x, UNIFORM).tolist() == [0, 0, 0, 1, 1, 2, 3, 3, 3]
    assert dequantize_axis(torch.arange(4), UNIFORM).tolist() == [-0.5, 0.5, 1.5, 2.5]
    assert UNIFORM.scale == 3.0


def test_uniform_256_round_trip_error_is_at_most_half_a_bin():
    axis = ActionAxis("x", bins=256, quantization="uniform", low=-0.3, high=0.5)
    x = torch.linspace(-0.3, 0.5, 5001)
    decoded = dequantize_axis(quantize_axis(x, axis), axis)
    half_bin = 0.8 / 256 / 2
    assert (decoded - x).abs().max() <= half_bin + 1e-6
    assert (decoded - x).abs().max() >= 0.9 * half_bin
    centres = dequantize_axis(torch.arange(256), axis)
    assert quantize_axis(centres, axis).tolist() == list(range(256))


def test_uniform_axes_from_data_use_percentile_bounds():
    column = torch.arange(101, dtype=torch.float32)  # 0..100: 1st / 99th percentiles are 1 and 99
    constant = torch.full((101,), 0.25)
    axes = uniform_axes_from_data(["a", "b"], torch.stack([column, constant], 1), bins=256)
    assert (axes[0].low, axes[0].high, axes[0].bins) == (pytest.approx(1.0), pytest.approx(99.0), 256)
    assert axes[1].low < 0.25 < axes[1].high and axes[1].high - axes[1].low < 1e-3
    # the outliers 0 and 100 land in the end bins
    assert quantize_axis(torch.tensor([0.0, 100.0]), axes[0]).tolist() == [0, 255]


def test_uniform_axis_json_round_trip_and_mu_law_json_is_unchanged():
    space = ActionSpace(axes=[AXIS, UNIFORM])
    payload = space.to_json()
    assert payload["axes"][0] == {"name": "camera", "max_value": 10.0, "mu": 10.0, "bins": 11}
    assert payload["axes"][1]["quantization"] == "uniform" and payload["axes"][1]["low"] == -1.0
    assert ActionSpace.from_json(payload) == space


def test_bad_uniform_and_mu_law_axes_are_clear_errors():
    with pytest.raises(ValueError, match="low < high"):
        ActionAxis("x", quantization="uniform", low=1.0, high=1.0)
    with pytest.raises(ValueError, match="low / high are bounds of uniform"):
        ActionAxis("x", low=-1.0)
    with pytest.raises(ValueError, match="quantization must be"):
        ActionAxis("x", quantization="tanh")
