"""Look at temporal samples: trajectory windows with their actions, video clips with their
captions, drawn as a strip of frames.

Reads through the training decoders (`TrajectoryDecoder`, the PyAV `decode_frames`), so the
frames and actions shown are the ones a model is trained on; damaged samples are counted in
the `SkipCounter`, not shown.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from matplotlib.figure import Figure

from mmpretrain.data.sources.action_space import ActionSpace
from mmpretrain.data.sources.image_text import ImageTextDecoder
from mmpretrain.data.sources.trajectory import TrajectoryDecoder
from mmpretrain.data.sources.video_text import FOIL_KEY
from mmpretrain.data.video.frame_sampling import uniform_indices
from mmpretrain.data.video.pyav_decoder import decode_frames
from mmpretrain.data.wds.shard_spec import ShardSpec, parse_shard_spec
from mmpretrain.data.sources.metadata import sample_metadata
from mmpretrain.data.wds.skips import SkipCounter, SkipSample
from mmpretrain.data.wds.tar_reader import iter_tar_samples

VIDEO_KEYS = ("mp4", "webm", "mkv", "avi")


@dataclass
class VideoClip:
    key: str
    frames_T3HW: torch.Tensor  # uint8
    caption: str
    foil: str | None


def _iter_raw(spec: str | ShardSpec, skips: SkipCounter) -> Iterator[dict[str, Any]]:
    spec = parse_shard_spec(spec) if isinstance(spec, str) else spec
    for shard in spec.shards:
        yield from iter_tar_samples(shard.path, skips)


def _read(spec: str | ShardSpec, decode, limit: int, skips: SkipCounter | None) -> list:
    skips = skips if skips is not None else SkipCounter()
    decoded = []
    for raw in _iter_raw(spec, skips):
        if len(decoded) == limit:
            break
        try:
            decoded.append(decode(raw))
        except SkipSample as skip:
            skips.add(skip.reason)
    return decoded


def read_trajectory_windows(spec: str | ShardSpec, action_space: ActionSpace, limit: int,
                            skips: SkipCounter | None = None) -> list[dict[str, Any]]:
    """The first `limit` decodable windows: `TrajectoryDecoder` output (frames uint8 [T, C, H, W],
    actions [T, A], action_mask, key, json)."""
    return _read(spec, TrajectoryDecoder(action_space), limit, skips)


def read_video_clips(spec: str | ShardSpec, limit: int, num_frames: int = 8,
                     skips: SkipCounter | None = None) -> list[VideoClip]:
    """The first `limit` decodable clips, each as `num_frames` uniformly spaced frames (the
    evaluation sampling) with its caption and temporal-order foil caption (None if absent)."""
    def decode(raw: dict[str, Any]) -> VideoClip:
        caption = ImageTextDecoder._caption(raw.get("txt"))
        meta = sample_metadata(raw)
        data = next((raw[k] for k in VIDEO_KEYS if k in raw), None)
        if data is None:
            raise SkipSample("missing_video")
        clip = decode_frames(data, lambda available, _fps: uniform_indices(available, num_frames))
        foil = meta.get(FOIL_KEY)
        return VideoClip(raw["__key__"], clip.frames_T3HW, caption, foil if isinstance(foil, str) else None)

    return _read(spec, decode, limit, skips)


def describe_action(action_A: torch.Tensor, action_space: ActionSpace) -> str:
    """One action row as `name=value` lines: buttons 0/1, axes rounded, choices as class ids."""
    buttons, axes, choices = action_space.split(action_A)
    parts = [f"{n}={int(v)}" for n, v in zip(action_space.buttons, buttons.tolist())]
    parts += [f"{a.name}={v:+.1f}" for a, v in zip(action_space.axes, axes.tolist())]
    parts += [f"{c.name}={int(v)}" for c, v in zip(action_space.choices, choices.tolist())]
    return "\n".join(parts)


def frames_strip(frames_T3HW: torch.Tensor, titles: Sequence[str] | None = None, title: str = "",
                 tile_inches: float = 1.4) -> Figure:
    """The frames of one clip in a row, each with an optional title (e.g. its action)."""
    if frames_T3HW.ndim != 4 or frames_T3HW.shape[1] != 3 or frames_T3HW.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames [T, 3, H, W], got {frames_T3HW.dtype} {tuple(frames_T3HW.shape)}")
    steps = frames_T3HW.shape[0]
    if titles is not None and len(titles) != steps:
        raise ValueError(f"got {len(titles)} titles for {steps} frames")
    figure = Figure(figsize=(tile_inches * steps, tile_inches + (0.9 if titles else 0.2) + (0.3 if title else 0)))
    axes = figure.subplots(1, steps, squeeze=False)[0]
    for t, axis in enumerate(axes):
        axis.imshow(frames_T3HW[t].permute(1, 2, 0).numpy(), interpolation="nearest")
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_xlabel(f"t={t}", fontsize=7)
        if titles is not None:
            axis.set_title(titles[t], fontsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure

