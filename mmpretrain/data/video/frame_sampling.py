"""Which frame indices of a clip to decode.

`uniform` (eval): the centre frame of each of `num_frames` equal segments of the clip, so
the sample is deterministic and covers the whole clip.
`strided` (train): `num_frames` frames `stride` apart starting at a random offset; the
stride follows `target_fps` when the clip's fps is known (stride = round(fps / target_fps)).
A clip too short for the span shrinks the stride; a clip with fewer frames than
`num_frames` falls back to uniform indices (with repeats), and `min_frames` decides upstream
whether such a clip is used at all.
"""

from __future__ import annotations

import random
from typing import Literal

SamplingMode = Literal["uniform", "strided"]


def uniform_indices(num_available: int, num_frames: int) -> list[int]:
    """Centres of `num_frames` equal segments of `[0, num_available)`."""
    if num_available < 1 or num_frames < 1:
        raise ValueError(f"need num_available >= 1 and num_frames >= 1, got {num_available}, {num_frames}")
    return [min(int((i + 0.5) * num_available / num_frames), num_available - 1) for i in range(num_frames)]


def strided_indices(num_available: int, num_frames: int, stride: int, rng: random.Random) -> list[int]:
    """`num_frames` indices `stride` apart at a random offset (stride shrinks to fit)."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if num_available < num_frames:
        return uniform_indices(num_available, num_frames)
    if num_frames > 1:
        stride = min(stride, (num_available - 1) // (num_frames - 1))
    span = (num_frames - 1) * stride + 1
    offset = rng.randint(0, num_available - span)
    return [offset + i * stride for i in range(num_frames)]


class FrameSampler:
    """Frame indices for one clip, given its frame count and (when known) its fps."""

    def __init__(self, num_frames: int = 8, mode: SamplingMode = "uniform", stride: int = 2,
                 target_fps: float | None = None) -> None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if mode not in ("uniform", "strided"):
            raise ValueError(f"frame sampling mode must be 'uniform' or 'strided', got {mode!r}")
        if stride < 1 or (target_fps is not None and target_fps <= 0):
            raise ValueError(f"need stride >= 1 and target_fps > 0, got {stride}, {target_fps}")
        self.num_frames, self.mode, self.stride, self.target_fps = num_frames, mode, stride, target_fps

    def stride_for(self, fps: float | None) -> int:
        if self.target_fps is None or not fps:
            return self.stride
        return max(1, round(fps / self.target_fps))

    def __call__(self, num_available: int, fps: float | None = None,
                 rng: random.Random | None = None) -> list[int]:
        if self.mode == "uniform":
            return uniform_indices(num_available, self.num_frames)
        return strided_indices(num_available, self.num_frames, self.stride_for(fps), rng or random.Random())

    def __repr__(self) -> str:
        return (f"FrameSampler(num_frames={self.num_frames}, mode={self.mode!r}, stride={self.stride}, "
                f"target_fps={self.target_fps})")
