"""LightningModules: wire model + loss + optimizer + logging (no data code)."""

from mmpretrain.tasks.contrastive import ContrastiveTask
from mmpretrain.tasks.video_contrastive import VideoContrastiveTask
from mmpretrain.tasks.schedules import WarmupConstantLR, WarmupCosineLR

__all__ = ["ContrastiveTask", "VideoContrastiveTask", "WarmupConstantLR", "WarmupCosineLR"]
