"""Weight merging: interpolation arithmetic and errors, and the EMA/ZS/FT-merge recursions of the
spec checked on scalar "models" where every expected value is worked out by hand."""

from __future__ import annotations

import pytest
import torch

from mmpretrain.continual.merging import WeightMerging, interpolate_state_dicts


def _sd(value: float) -> dict[str, torch.Tensor]:
    return {"w": torch.tensor([value]), "step": torch.tensor(int(value), dtype=torch.long)}


def _value(state: dict[str, torch.Tensor]) -> float:
    return state["w"].item()


def test_interpolation_is_weighted_sum_of_floating_tensors():
    a = {"w": torch.tensor([1.0, 2.0]), "h": torch.tensor([4.0], dtype=torch.float16),
         "count": torch.tensor(7)}
    b = {"w": torch.tensor([3.0, 6.0]), "h": torch.tensor([0.0], dtype=torch.float16),
         "count": torch.tensor(1)}
    merged = interpolate_state_dicts(a, b, 0.25)
    torch.testing.assert_close(merged["w"], torch.tensor([2.5, 5.0]))  # 0.25 a + 0.75 b
    assert merged["h"].dtype == torch.float16 and merged["h"].item() == 1.0
    assert merged["count"].item() == 7  # integer buffers come from the first state dict
    merged["w"].add_(1)
    assert a["w"].tolist() == [1.0, 2.0]  # a fresh dict, inputs untouched


def test_interpolation_rejects_mismatched_state_dicts():
    with pytest.raises(ValueError, match=r"only in the first: \['extra'\]"):
        interpolate_state_dicts({"w": torch.zeros(2), "extra": torch.zeros(1)},
                                {"w": torch.zeros(2)}, 0.5)
    with pytest.raises(ValueError, match=r"'w' has shape \(2,\) .* \(3,\)"):
        interpolate_state_dicts({"w": torch.zeros(2)}, {"w": torch.zeros(3)}, 0.5)


def test_ema_merge_chains_from_theta_0():
    merging = WeightMerging("ema", weight=0.5)
    merging.start(_sd(0.0))
    evaluated, start = merging.task_end(_sd(8.0))  # bar_1 = 0.5*8 + 0.5*0
    assert _value(evaluated) == _value(start) == 4.0
    evaluated, start = merging.task_end(_sd(12.0))  # bar_2 = 0.5*12 + 0.5*4
    assert _value(evaluated) == _value(start) == 8.0


def test_zs_merge_restarts_from_theta_0_and_evaluates_running_merge():
    merging = WeightMerging("zs", weight=0.25)
    merging.start(_sd(4.0))
    evaluated, start = merging.task_end(_sd(8.0))  # 0.25*8 + 0.75*4
    assert (_value(evaluated), _value(start)) == (5.0, 4.0)
    evaluated, start = merging.task_end(_sd(1.0))  # 0.25*1 + 0.75*5
    assert (_value(evaluated), _value(start)) == (4.0, 4.0)


def test_ft_merge_interpolates_each_endpoint_with_theta_0():
    merging = WeightMerging("ft", weight=0.75)
    merging.start(_sd(0.0))
    evaluated, start = merging.task_end(_sd(8.0))
    assert _value(evaluated) == _value(start) == 6.0
    evaluated, start = merging.task_end(_sd(4.0))  # not chained: 0.75*4 + 0.25*0
    assert _value(evaluated) == _value(start) == 3.0


def test_none_passes_weights_through():
    merging = WeightMerging("none")
    merging.start(_sd(1.0))
    evaluated, start = merging.task_end(_sd(9.0))
    assert _value(evaluated) == _value(start) == 9.0
    assert merging.state_dict().keys() == {"tasks_done"}


@pytest.mark.parametrize("mode", ["ema", "zs", "ft"])
def test_state_round_trips_through_weights_only_checkpoint(tmp_path, mode):
    merging = WeightMerging(mode, weight=0.5)
    merging.start(_sd(2.0))
    merging.task_end(_sd(6.0))
    torch.save({"merging": merging.state_dict()}, tmp_path / "ckpt.pt")
    resumed = WeightMerging(mode, weight=0.5)
    resumed.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["merging"])
    assert resumed.tasks_done == 1
    expected = merging.task_end(_sd(10.0))
    got = resumed.task_end(_sd(10.0))
    assert [_value(s) for s in got] == [_value(s) for s in expected]


def test_model_state_dicts_merge_and_load(tiny_clip):
    theta_0 = {k: v.clone() for k, v in tiny_clip.state_dict().items()}
    merging = WeightMerging("ema", weight=0.5)
    merging.start(tiny_clip.state_dict())
    with torch.no_grad():
        for param in tiny_clip.parameters():
            param.add_(1.0)
    evaluated, start = merging.task_end(tiny_clip.state_dict())
    tiny_clip.load_state_dict(start, strict=True)
    for key, value in tiny_clip.state_dict().items():
        torch.testing.assert_close(value, theta_0[key] + 0.5)


def test_bad_use_raises_clear_errors():
    with pytest.raises(ValueError, match="merging.mode must be one of"):
        WeightMerging("average")
    with pytest.raises(ValueError, match="merging.weight"):
        WeightMerging("ema", weight=1.5)
    with pytest.raises(RuntimeError, match="before start"):
        WeightMerging("ft").task_end(_sd(1.0))
