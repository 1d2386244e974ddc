"""Factored action heads (VPT): Bernoulli per button, categorical over mu-law bins per axis,
categorical per choice, optional per-axis regression. Each step predicts `chunk` future
actions (ACT-style chunking; chunk 1 = the action at that step)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmpretrain.data.sources.action_space import ActionSpace


class ActionHeads(nn.Module):
    def __init__(self, width: int, action_space: ActionSpace, chunk: int = 1, regress_axes: bool = False) -> None:
        super().__init__()
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.action_space, self.chunk, self.regress_axes = action_space, chunk, regress_axes
        self.sizes = ([len(action_space.buttons)] + [a.bins for a in action_space.axes]
                      + [c.num_classes for c in action_space.choices]
                      + ([len(action_space.axes)] if regress_axes and action_space.axes else []))
        self.proj = nn.Linear(width, chunk * sum(self.sizes))

    def forward(self, feats_BTD: Tensor) -> dict[str, Tensor | list[Tensor]]:
        """{"buttons": [B, T, H, nb] logits, "axes": list of [B, T, H, bins], "choices": list of
        [B, T, H, classes], "regression": [B, T, H, na] (only with regress_axes)}."""
        batch, steps, _ = feats_BTD.shape
        parts = self.proj(feats_BTD).view(batch, steps, self.chunk, -1).split(self.sizes, dim=-1)
        na, nc = len(self.action_space.axes), len(self.action_space.choices)
        out: dict[str, Tensor | list[Tensor]] = {"buttons": parts[0], "axes": list(parts[1:1 + na]),
                                                 "choices": list(parts[1 + na:1 + na + nc])}
        if len(parts) > 1 + na + nc:
            out["regression"] = parts[-1]
        return out

    def decode(self, out: dict[str, Tensor | list[Tensor]]) -> tuple[Tensor, Tensor]:
        """Most likely action vector [B, T, H, A] (axes at bin centres) and its confidence
        [B, T, H]: the smallest max-probability over all heads (the least sure head)."""
        button_prob = torch.sigmoid(out["buttons"])
        buttons = (button_prob >= 0.5).float()
        confidences = [torch.maximum(button_prob, 1 - button_prob)]
        axis_bins, choices = [], []
        for logits in out["axes"]:
            prob, index = logits.softmax(-1).max(-1)
            axis_bins.append(index)
            confidences.append(prob.unsqueeze(-1))
        for logits in out["choices"]:
            prob, index = logits.softmax(-1).max(-1)
            choices.append(index)
            confidences.append(prob.unsqueeze(-1))
        shape = buttons.shape[:-1]
        axes = (self.action_space.axis_values(torch.stack(axis_bins, -1)) if axis_bins
                else buttons.new_zeros(*shape, 0))
        choice = torch.stack(choices, -1) if choices else buttons.new_zeros(*shape, 0, dtype=torch.long)
        confidence = torch.cat(confidences, -1).min(-1).values
        return self.action_space.join(buttons, axes, choice), confidence
