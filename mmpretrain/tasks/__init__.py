"""LightningModules: wire model + loss + optimizer + logging (no data code)."""

from mmpretrain.tasks.contrastive import ContrastiveTask
from mmpretrain.tasks.schedules import WarmupConstantLR, WarmupCosineLR

__all__ = ["ContrastiveTask", "WarmupConstantLR", "WarmupCosineLR"]

from mmpretrain.tasks.action import ActionTask  # noqa: E402

__all__ += ["ActionTask"]
