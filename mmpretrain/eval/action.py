"""Action-prediction metrics over valid steps: per-button accuracy / F1, per-axis mu-law bin
accuracy and R², per-choice accuracy, and the exact-match rate (every head right, axes
compared by bin). Inputs are action vectors [N, A] in `ActionSpace` order."""

from __future__ import annotations

import torch
from torch import Tensor

from mmpretrain.data.sources.action_space import ActionSpace


def binary_f1(pred: Tensor, true: Tensor) -> float:
    """F1 of the positive class; 1.0 when there are no positives to find and none predicted."""
    pred, true = pred.bool(), true.bool()
    tp = (pred & true).sum().item()
    fp = (pred & ~true).sum().item()
    fn = (~pred & true).sum().item()
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def r2_score(pred: Tensor, true: Tensor) -> float:
    """1 - SS_res / SS_tot; nan when the targets are constant."""
    ss_tot = ((true - true.mean()) ** 2).sum().item()
    ss_res = ((true - pred) ** 2).sum().item()
    return float("nan") if ss_tot == 0 else 1.0 - ss_res / ss_tot


def action_metrics(action_space: ActionSpace, pred_NA: Tensor, true_NA: Tensor) -> dict[str, float]:
    if pred_NA.shape != true_NA.shape:
        raise ValueError(f"predicted actions {tuple(pred_NA.shape)} vs true {tuple(true_NA.shape)}")
    metrics: dict[str, float] = {"num_steps": float(pred_NA.shape[0])}
    if pred_NA.shape[0] == 0:
        return metrics
    pred_buttons, pred_axes, pred_choices = action_space.split(pred_NA.float())
    true_buttons, true_axes, true_choices = action_space.split(true_NA.float())
    correct = torch.ones(pred_NA.shape[0], dtype=torch.bool, device=pred_NA.device)
    for i, name in enumerate(action_space.buttons):
        hit = (pred_buttons[:, i] >= 0.5) == (true_buttons[:, i] >= 0.5)
        metrics[f"button_{name}_acc"] = hit.float().mean().item()
        metrics[f"button_{name}_f1"] = binary_f1(pred_buttons[:, i] >= 0.5, true_buttons[:, i] >= 0.5)
        correct &= hit
    if action_space.axes:
        pred_bins, true_bins = action_space.axis_bins(pred_axes), action_space.axis_bins(true_axes)
        for i, axis in enumerate(action_space.axes):
            hit = pred_bins[:, i] == true_bins[:, i]
            metrics[f"axis_{axis.name}_bin_acc"] = hit.float().mean().item()
            metrics[f"axis_{axis.name}_r2"] = r2_score(pred_axes[:, i], true_axes[:, i])
            correct &= hit
    for i, choice in enumerate(action_space.choices):
        hit = pred_choices[:, i] == true_choices[:, i]
        metrics[f"choice_{choice.name}_acc"] = hit.float().mean().item()
        correct &= hit
    metrics["exact_match"] = correct.float().mean().item()
    return metrics
