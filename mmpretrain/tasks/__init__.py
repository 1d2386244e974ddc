"""LightningModules: wire model + loss + optimizer + logging (no data code)."""

from mmpretrain.tasks.action import ActionTask
from mmpretrain.tasks.continual import ContinualTask
from mmpretrain.tasks.contrastive import ContrastiveTask
from mmpretrain.tasks.schedules import WarmupConstantLR, WarmupCosineLR
from mmpretrain.tasks.video_contrastive import VideoContrastiveTask

__all__ = ["ActionTask", "ContinualTask", "ContrastiveTask", "VideoContrastiveTask", "WarmupConstantLR",
           "WarmupCosineLR"]

from mmpretrain.tasks.interleaved import InterleavedTask  # noqa: E402

__all__ += ["InterleavedTask"]
