"""Trajectory windows: `{key}.frames.npy` (uint8 T×H×W×C) or `{key}.mp4`, `{key}.actions.npy`
(float T×A, absent in unlabelled video), optional `{key}.states.npy`, `{key}.json`.

Alignment: action row t is the action taken at frame t, which produced frame t+1; so in a
window of T frames the last action's outcome lies outside the window.

json: `fps`, `episode`, `frame_start`, `label_source` ("human" / "idm" / "none"), optional
per-step `confidence` (IDM labels; human labels count as 1.0) and `action_space`
(`ActionSpace.to_json`; a window whose action columns differ from the configured space is skipped,
its axis quantization may differ). Steps whose confidence is below `min_confidence`, and
steps of confidence 0 (no label) always, are masked out.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import torch

from mmpretrain.data.sources.action_space import ActionSpace
from mmpretrain.data.sources.metadata import sample_metadata
from mmpretrain.data.wds.skips import SkipSample
from mmpretrain.extras import require


def load_npy(data: bytes, what: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exn:
        raise SkipSample("decode_error", f"{what}: {exn}") from exn


def decode_mp4(data: bytes) -> np.ndarray:
    """mp4 bytes -> uint8 [T, H, W, 3] (every frame, RGB) via PyAV."""
    av = require("av", feature="mp4 trajectory decoding")

    try:
        with av.open(io.BytesIO(data)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except av.error.FFmpegError as exn:
        raise SkipSample("decode_error", f"mp4: {exn}") from exn
    if not frames:
        raise SkipSample("decode_error", "mp4 holds no video frames")
    return np.stack(frames)


class TrajectoryDecoder:
    """Raw sample -> `{"frames": uint8 [T, C, H, W], "actions": float [T, A], "action_mask": bool [T],
    "key", "json"}`, optionally cropped to `window` frames (random start when `random_crop`).

    Skips: `missing_frames`, `missing_actions` (when `require_actions`), `bad_json`,
    `short_window` (fewer frames than `window`), `action_space_mismatch`, `bad_actions`
    (rows != frames or columns != the action space), `decode_error`.
    Unlabelled samples (when actions are not required) get zero actions and an all-false mask.
    """

    def __init__(self, action_space: ActionSpace, window: int | None = None, random_crop: bool = False,
                 require_actions: bool = True, min_confidence: float = 0.0) -> None:
        if window is not None and window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.action_space = action_space
        self.window, self.random_crop = window, random_crop
        self.require_actions, self.min_confidence = require_actions, min_confidence

    def __call__(self, raw: dict[str, Any]) -> dict[str, Any]:
        meta = sample_metadata(raw)
        if "frames.npy" in raw:
            frames = load_npy(raw["frames.npy"], "frames.npy")
        elif "mp4" in raw:
            frames = decode_mp4(raw["mp4"])
        else:
            raise SkipSample("missing_frames")
        if frames.ndim != 4 or frames.dtype != np.uint8:
            raise SkipSample("decode_error", f"frames must be uint8 T×H×W×C, got {frames.dtype} {frames.shape}")
        steps = frames.shape[0]
        if "action_space" in meta and not ActionSpace.from_json(meta["action_space"]).same_columns(self.action_space):
            raise SkipSample("action_space_mismatch", f"{meta['action_space']} vs {self.action_space.to_json()}")
        if "actions.npy" in raw:
            actions = load_npy(raw["actions.npy"], "actions.npy").astype(np.float32)
            if actions.shape != (steps, self.action_space.dim):
                raise SkipSample("bad_actions", f"actions {actions.shape} for {steps} frames and "
                                 f"{self.action_space.dim} action columns")
            confidence = np.asarray(meta.get("confidence", np.ones(steps)), dtype=np.float32)
            if confidence.shape != (steps,):
                raise SkipSample("bad_json", f"confidence has {confidence.shape} entries for {steps} frames")
            # a zero-confidence step carries no label (the IDM's last step of a window), whatever
            # the threshold
            mask = (confidence > 0) & (confidence >= self.min_confidence)
        elif self.require_actions:
            raise SkipSample("missing_actions")
        else:
            actions = np.zeros((steps, self.action_space.dim), np.float32)
            mask = np.zeros(steps, bool)
        start = self._crop_start(steps)
        stop = start + (self.window or steps)
        return {"frames": torch.from_numpy(np.ascontiguousarray(frames[start:stop])).permute(0, 3, 1, 2),
                "actions": torch.from_numpy(actions[start:stop]), "action_mask": torch.from_numpy(mask[start:stop]),
                "key": raw["__key__"], "json": {**meta, "crop_start": start}}

    def _crop_start(self, steps: int) -> int:
        if self.window is None:
            return 0
        if steps < self.window:
            raise SkipSample("short_window", f"{steps} frames < window {self.window}")
        if self.random_crop:
            return int(torch.randint(0, steps - self.window + 1, ()).item())
        return 0

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """frames uint8 [B, T, C, H, W], actions [B, T, A], action_mask [B, T], key, json."""
        return {"frames": torch.stack([s["frames"] for s in samples]),
                "actions": torch.stack([s["actions"] for s in samples]),
                "action_mask": torch.stack([s["action_mask"] for s in samples]),
                "key": [s["key"] for s in samples], "json": [s["json"] for s in samples]}


def encode_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
