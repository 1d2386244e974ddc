"""Encode frames to short-GOP H.264 MP4 bytes (PyAV), deterministically.

Used by the synthetic video-text generator and tests. A single encoder thread and a fixed
GOP make the bytes depend only on the frames, so same seed -> identical shards.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from mmpretrain.extras import require


def encode_mp4(frames_THW3: Sequence[np.ndarray], fps: int = 8, gop: int = 8, crf: int = 18) -> bytes:
    """uint8 RGB frames (even height and width) -> MP4 bytes, keyframe every `gop` frames."""
    if not frames_THW3:
        raise ValueError("encode_mp4 needs at least one frame")
    height, width = frames_THW3[0].shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 (yuv420p) needs even frame sides, got {width}x{height}")
    av = require("av", feature="video encoding")
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"g": str(gop), "keyint_min": str(gop), "crf": str(crf), "threads": "1",
                          "preset": "veryfast", "bf": "0"}
        for frame in frames_THW3:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
