"""Factored action spaces (VPT style): binary buttons, mu-law quantized axes, categorical choices.

An action vector `[A]` (one row of `actions.npy`) holds, in this order, one 0/1 column per
button, one float column per continuous axis and one integer-valued column per choice. The
space is described in each sample's json (`action_space`, see `to_json`) and in the model
config, so the data layer can check that shards and model agree.

Axis quantization, per axis:
- `mu_law` (VPT camera): clip to ±`max_value`, mu-law
  `v = sign(x) · ln(1 + mu |x| / max) / ln(1 + mu) · max`, bin = round((v + max) / step) with
  `step = 2 max / (bins - 1)`; decoding maps a bin to the exact inverse of its centre.
- `uniform` (OpenVLA action tokens): normalise to [-1, 1] with the bounds [`low`, `high`] (the
  data's 1st / 99th percentiles, `data_tools/lerobot_to_wds.py --axis-quantization uniform`),
  clip, cut into `bins` equal bins (256 in OpenVLA); decoding gives the bin centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor


@dataclass(frozen=True)
class ActionAxis:
    """A continuous axis. mu-law: `bins` odd so that 0 is a bin centre. uniform: bounds
    [`low`, `high`] (default ±`max_value`)."""

    name: str
    max_value: float = 10.0
    mu: float = 10.0
    bins: int = 11
    quantization: Literal["mu_law", "uniform"] = "mu_law"
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if self.quantization == "mu_law":
            if self.max_value <= 0 or self.mu <= 0 or self.bins < 3 or self.bins % 2 == 0:
                raise ValueError(f"axis {self.name!r}: need max_value > 0, mu > 0 and an odd bins >= 3, "
                                 f"got max_value={self.max_value}, mu={self.mu}, bins={self.bins}")
            if self.low is not None or self.high is not None:
                raise ValueError(f"axis {self.name!r}: low / high are bounds of uniform quantization; "
                                 f"a mu_law axis is bounded by max_value")
            return
        if self.quantization != "uniform":
            raise ValueError(f"axis {self.name!r}: quantization must be 'mu_law' or 'uniform', "
                             f"got {self.quantization!r}")
        object.__setattr__(self, "low", float(-self.max_value if self.low is None else self.low))
        object.__setattr__(self, "high", float(self.max_value if self.high is None else self.high))
        if not self.low < self.high or self.bins < 2:
            raise ValueError(f"axis {self.name!r}: uniform quantization needs low < high and bins >= 2, "
                             f"got low={self.low}, high={self.high}, bins={self.bins}")

    @property
    def scale(self) -> float:
        """Largest magnitude the quantizer represents (to normalise regression targets and inputs)."""
        return self.max_value if self.quantization == "mu_law" else max(abs(self.low), abs(self.high))

    def to_json(self) -> dict[str, Any]:
        payload = {"name": self.name, "max_value": self.max_value, "mu": self.mu, "bins": self.bins}
        if self.quantization == "uniform":
            payload.update(quantization="uniform", low=self.low, high=self.high)
        return payload


@dataclass(frozen=True)
class ActionChoice:
    name: str
    num_classes: int

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ValueError(f"choice {self.name!r}: num_classes must be >= 2, got {self.num_classes}")


def mu_law_encode(x: Tensor, max_value: float, mu: float) -> Tensor:
    x = x.clamp(-max_value, max_value)
    return torch.sign(x) * torch.log1p(mu * x.abs() / max_value) / math.log1p(mu) * max_value


def mu_law_decode(v: Tensor, max_value: float, mu: float) -> Tensor:
    return torch.sign(v) * (torch.pow(1.0 + mu, v.abs() / max_value) - 1.0) / mu * max_value


def quantize_axis(x: Tensor, axis: ActionAxis) -> Tensor:
    """Continuous values -> bin indices (int64) in [0, axis.bins)."""
    if axis.quantization == "uniform":
        unit = ((x.float() - axis.low) / (axis.high - axis.low)).clamp(0.0, 1.0)
        return torch.floor(unit * axis.bins).long().clamp(0, axis.bins - 1)
    step = 2 * axis.max_value / (axis.bins - 1)
    v = mu_law_encode(x.float(), axis.max_value, axis.mu)
    return torch.round((v + axis.max_value) / step).long().clamp(0, axis.bins - 1)


def dequantize_axis(bins: Tensor, axis: ActionAxis) -> Tensor:
    """Bin indices -> the continuous value at each bin centre."""
    if axis.quantization == "uniform":
        return axis.low + (bins.float() + 0.5) / axis.bins * (axis.high - axis.low)
    step = 2 * axis.max_value / (axis.bins - 1)
    return mu_law_decode(bins.float() * step - axis.max_value, axis.max_value, axis.mu)


@dataclass(frozen=True)
class ActionSpace:
    buttons: list[str] = field(default_factory=list)
    axes: list[ActionAxis] = field(default_factory=list)
    choices: list[ActionChoice] = field(default_factory=list)

    def __post_init__(self) -> None:
        # jsonargparse and json hand over plain dicts; normalise so equality is by value
        object.__setattr__(self, "buttons", [str(b) for b in self.buttons])
        object.__setattr__(self, "axes", [a if isinstance(a, ActionAxis) else ActionAxis(**a) for a in self.axes])
        object.__setattr__(self, "choices", [c if isinstance(c, ActionChoice) else ActionChoice(**c)
                                             for c in self.choices])
        names = self.buttons + [a.name for a in self.axes] + [c.name for c in self.choices]
        if not names:
            raise ValueError("an action space needs at least one button, axis or choice")
        if len(set(names)) != len(names):
            raise ValueError(f"action names must be unique, got {names}")

    @property
    def dim(self) -> int:
        return len(self.buttons) + len(self.axes) + len(self.choices)

    def split(self, actions_NA: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """[..., A] -> (buttons [..., nb] float 0/1, axes [..., na] float, choices [..., nc] int64)."""
        nb, na = len(self.buttons), len(self.axes)
        if actions_NA.shape[-1] != self.dim:
            raise ValueError(f"actions have {actions_NA.shape[-1]} columns, the action space {self.dim}")
        return (actions_NA[..., :nb].float(), actions_NA[..., nb:nb + na].float(),
                actions_NA[..., nb + na:].round().long())

    def axis_bins(self, axes_NX: Tensor) -> Tensor:
        """[..., na] continuous -> [..., na] bin indices."""
        return torch.stack([quantize_axis(axes_NX[..., i], axis) for i, axis in enumerate(self.axes)], dim=-1) \
            if self.axes else axes_NX.long()

    def axis_values(self, bins_NX: Tensor) -> Tensor:
        return torch.stack([dequantize_axis(bins_NX[..., i], axis) for i, axis in enumerate(self.axes)], dim=-1) \
            if self.axes else bins_NX.float()

    def join(self, buttons: Tensor, axes: Tensor, choices: Tensor) -> Tensor:
        return torch.cat([buttons.float(), axes.float(), choices.float()], dim=-1)

    def same_columns(self, other: ActionSpace) -> bool:
        """Whether the action vectors mean the same: same buttons, axes and choices by name (and
        class count). Axis quantization (mu-law vs uniform tokens, bounds, bins) is how a model
        discretises the same continuous values, so it may differ between shards and model."""
        return (self.buttons == other.buttons and [a.name for a in self.axes] == [a.name for a in other.axes]
                and self.choices == other.choices)

    def to_json(self) -> dict[str, Any]:
        return {"buttons": list(self.buttons),
                "axes": [a.to_json() for a in self.axes],
                "choices": [{"name": c.name, "num_classes": c.num_classes} for c in self.choices]}

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> ActionSpace:
        return cls(buttons=payload.get("buttons", []), axes=payload.get("axes", []),
                   choices=payload.get("choices", []))


def uniform_axes_from_data(names: list[str], actions_NA: Tensor, bins: int = 256,
                           percentiles: tuple[float, float] = (1.0, 99.0)) -> list[ActionAxis]:
    """OpenVLA-style action tokens: one uniform axis per column, bounded by the data's
    `percentiles` (outliers beyond them are clipped into the end bins). A constant column gets
    a tiny interval around its value so it still has valid bounds."""
    values = actions_NA.double()
    low = torch.quantile(values, percentiles[0] / 100.0, dim=0)
    high = torch.quantile(values, percentiles[1] / 100.0, dim=0)
    axes = []
    for name, lo, hi in zip(names, low.tolist(), high.tolist()):
        if hi <= lo:
            pad = max(abs(lo) * 1e-3, 1e-6)
            lo, hi = lo - pad, hi + pad
        axes.append(ActionAxis(name, max_value=max(abs(lo), abs(hi)), bins=bins, quantization="uniform",
                               low=lo, high=hi))
    return axes
