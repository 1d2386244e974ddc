"""Decode only the requested frames of an encoded video (PyAV, which bundles ffmpeg).

Frames are identified by index = round((pts - start) * time_base * fps). Between two wanted
frames that are more than `seek_gap` frames apart the decoder seeks (to the keyframe before
the target) instead of decoding everything in between, so sparse sampling of long clips
costs a few GOPs, not the whole clip; with short-GOP MP4 (the recommended storage) a seek
lands close to its target. Each decoder uses `threads` ffmpeg threads: keep 1 when several
DataLoader workers decode in parallel (workers already fill the cores), raise it for a
single worker on a many-core machine.

torchcodec is not used: its wheels need the system ffmpeg shared libraries at import time.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from mmpretrain.data.wds.skips import SkipSample
from mmpretrain.extras import require

IndexPicker = Callable[[int, float | None], list[int]]


@dataclass(frozen=True)
class DecodedClip:
    frames_T3HW: torch.Tensor  # uint8
    indices: list[int]
    num_available: int
    fps: float | None


def _frame_count(stream: av.video.stream.VideoStream, fps: float | None) -> int:
    if stream.frames:
        return int(stream.frames)
    if stream.duration is not None and stream.time_base is not None and fps:
        return max(int(round(float(stream.duration * stream.time_base) * fps)), 0)
    return 0


def _frame_index(frame: av.VideoFrame, start_pts: int, time_base: Fraction | None,
                 fps: float | None, fallback: int) -> int:
    if frame.pts is None or time_base is None or not fps:
        return fallback
    return int(round(float((frame.pts - start_pts) * time_base) * fps))


def decode_frames(data: bytes, pick_indices: IndexPicker, threads: int = 1,
                  min_frames: int = 1, seek_gap: int = 32) -> DecodedClip:
    """Decode the frames `pick_indices(num_available, fps)` asks for, as uint8 [T, 3, H, W].

    Raises SkipSample("decode_error") for unreadable data or a file without a video stream,
    SkipSample("short_video") when the clip holds fewer than `min_frames` frames.
    """
    av = require("av", feature="video decoding")
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise SkipSample("decode_error", "no video stream")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = threads
            stream.thread_type = "AUTO" if threads > 1 else "SLICE"
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else None
            num_available = _frame_count(stream, fps)
            if num_available == 0:  # no header count: index the whole clip once
                num_available = sum(1 for _ in container.decode(stream))
                container.seek(0)
            if num_available < min_frames:
                raise SkipSample("short_video", f"{num_available} frames < min_frames={min_frames}")
            indices = pick_indices(num_available, fps)
            found = _decode_wanted(container, stream, sorted(set(indices)), fps, seek_gap)
    except SkipSample:
        raise
    except (av.FFmpegError, ValueError, IndexError, OSError) as exn:
        raise SkipSample("decode_error", repr(exn)) from exn
    if not found:
        raise SkipSample("decode_error", "no frame could be decoded")
    if len(found) < min(min_frames, len(set(indices))):
        raise SkipSample("short_video", f"only {len(found)} of the requested frames decode")
    # a frame count that overstated the clip leaves late indices undecoded: use the nearest earlier frame
    decoded = sorted(found)
    frames = [found[max([d for d in decoded if d <= i], default=decoded[0])] for i in indices]
    frames_T3HW = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()
    return DecodedClip(frames_T3HW, list(indices), num_available, fps)


def _decode_wanted(container, stream, wanted: list[int], fps: float | None,
                   seek_gap: int) -> dict[int, np.ndarray]:
    """{index: HxWx3 uint8} for the `wanted` (sorted) indices that exist in the clip."""
    start_pts = stream.start_time or 0
    time_base = stream.time_base
    found: dict[int, np.ndarray] = {}
    target = 0
    position = -1  # index of the last decoded frame
    while target < len(wanted):
        seekable = fps and time_base is not None
        if seekable and wanted[target] - position > seek_gap:
            seconds = wanted[target] / fps
            container.seek(start_pts + int(seconds / time_base), stream=stream, backward=True)
        progressed = False
        for count, frame in enumerate(container.decode(stream)):
            position = _frame_index(frame, start_pts, time_base, fps, position + 1 if count else count)
            progressed = True
            while target < len(wanted) and wanted[target] < position:
                target += 1  # not present in the stream (e.g. variable frame rate)
            if target == len(wanted):
                break
            if wanted[target] == position:
                found[position] = frame.to_ndarray(format="rgb24")
                target += 1
                if target == len(wanted):
                    break
                if seekable and wanted[target] - position > seek_gap:
                    break
        else:
            break  # end of stream
        if not progressed:
            break
    return found
