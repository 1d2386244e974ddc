"""Roll a policy out in the environment its data came from: mean return over episodes.

A `CausalPolicy` acts from a sliding buffer of its last `context` frames, taking the action
predicted at the newest frame (chunk position 0, most likely value per head).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import torch

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class FrameBufferPolicy:
    def __init__(self, model: torch.nn.Module, context: int) -> None:
        if context < 1:
            raise ValueError(f"context must be >= 1, got {context}")
        self.model, self.context = model, context
        self.frames: deque[np.ndarray] = deque(maxlen=context)

    def reset(self) -> None:
        self.frames.clear()

    @torch.no_grad()
    def __call__(self, frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self.frames.append(frame)
        frames_BTCHW = torch.from_numpy(np.stack(self.frames)).permute(0, 3, 1, 2).unsqueeze(0)
        actions_BTA, _ = self.model.predict_actions(frames_BTCHW)
        return actions_BTA[0, -1].double().numpy()


def rollout_returns(env, policy: Policy, episodes: int, seed: int, on_reset: Callable[[], None] | None = None
                    ) -> list[float]:
    """Return of each of `episodes` episodes; episode e resets the env with seed `seed + e`."""
    rng = np.random.default_rng(seed)
    returns = []
    for episode in range(episodes):
        if on_reset is not None:
            on_reset()
        frame, total, done = env.reset(seed + episode), 0.0, False
        while not done:
            frame, reward, done = env.step(policy(frame, rng))
            total += reward
        returns.append(total)
    return returns


def return_summary(returns: list[float]) -> dict[str, float]:
    values = np.asarray(returns, dtype=np.float64)
    return {"episodes": float(len(values)), "return_mean": float(values.mean()),
            "return_std": float(values.std()), "return_min": float(values.min()), "return_max": float(values.max())}
