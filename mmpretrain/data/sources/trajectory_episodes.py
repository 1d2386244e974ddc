"""Cut recorded episodes into trajectory-window samples (the shard layout of `trajectory.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from mmpretrain.data.sources.action_space import ActionSpace
from mmpretrain.data.sources.trajectory import encode_npy


def episode_window_samples(episode: int, frames: np.ndarray, actions: np.ndarray | None,
                           action_space: ActionSpace, window: int, fps: float,
                           extra_meta: dict[str, Any] | None = None,
                           states: np.ndarray | None = None) -> Iterator[dict[str, Any]]:
    """Non-overlapping windows of `window` frames; a shorter tail is dropped.

    `actions` None writes an unlabelled-video sample (`label_source: "none"`, no actions.npy).
    Keys are `{episode:07d}_{frame_start:06d}` so a labelled and an unlabelled recording of the
    same episodes share keys (pseudo-label accuracy is measured by key).
    """
    if frames.dtype != np.uint8 or frames.ndim != 4:
        raise ValueError(f"episode {episode}: frames must be uint8 T×H×W×C, got {frames.dtype} {frames.shape}")
    if actions is not None and actions.shape != (len(frames), action_space.dim):
        raise ValueError(f"episode {episode}: actions {actions.shape} for {len(frames)} frames and "
                         f"{action_space.dim} action columns")
    for start in range(0, len(frames) - window + 1, window):
        meta = {"episode": episode, "frame_start": start, "frame_end": start + window, "fps": fps,
                "label_source": "none" if actions is None else "human",
                "action_space": action_space.to_json(), **(extra_meta or {})}
        sample = {"__key__": f"{episode:07d}_{start:06d}",
                  "frames.npy": encode_npy(np.ascontiguousarray(frames[start:start + window])), "json": meta}
        if actions is not None:
            sample["actions.npy"] = encode_npy(actions[start:start + window].astype(np.float32))
        if states is not None:
            sample["states.npy"] = encode_npy(states[start:start + window].astype(np.float32))
        yield sample
