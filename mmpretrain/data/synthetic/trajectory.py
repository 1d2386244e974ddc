"""Synthetic trajectory shards from `CursorPaintEnv` (known actions, fast, no codec).

Episode `e` of a run with seed `s` depends only on `(s, e)`, so a labelled and an
`--unlabelled` run with the same seed hold the same frames under the same keys, and a run with
fewer `num_samples` is a prefix of one with more. Samples are non-overlapping windows of
`window` frames; `num_samples` counts windows. `epsilon` sets how noisy the scripted
demonstrator is (recorded in each sample's json), e.g. a noisier pretraining set (0.5) beside
few demonstrations of the default policy (0.2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mmpretrain.data.sources.trajectory_episodes import episode_window_samples
from mmpretrain.data.synthetic.cursor_env import (ACTION_SPACE, CursorPaintEnv, random_cursor_action,
                                                   scripted_action)
from mmpretrain.data.wds.writer import ShardWriter

SUBCOMMAND = "trajectory"
DESCRIPTION = "cursor-paint trajectories with known actions (frames.npy, actions.npy, json)"
FPS = 10.0


@dataclass(frozen=True)
class TrajectoryOptions:
    num_samples: int = field(default=256, metadata={"help": "windows to generate"})
    shard_size: int = field(default=64, metadata={"help": "windows per tar shard"})
    seed: int = field(default=0, metadata={"help": "random seed; same seed -> identical shards"})
    image_size: int = field(default=24, metadata={"help": "frame side in pixels (multiple of 6)"})
    window: int = field(default=8, metadata={"help": "frames per sample"})
    episode_length: int = field(default=64, metadata={"help": "steps per episode"})
    policy: str = field(default="scripted", metadata={"help": "scripted or random"})
    epsilon: float = field(default=0.2, metadata={"help": "scripted policy: chance of a random action component"})
    unlabelled: bool = field(default=False, metadata={"help": "write frames without actions (label_source none)"})

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.shard_size < 1:
            raise ValueError(f"num_samples and shard_size must be >= 1, got {self.num_samples}, {self.shard_size}")
        if self.image_size < 24 or self.image_size % 6:
            raise ValueError(f"image_size must be a multiple of 6 and >= 24, got {self.image_size}")
        if not 2 <= self.window <= self.episode_length:
            raise ValueError(f"need 2 <= window <= episode_length, got {self.window}, {self.episode_length}")
        if self.policy not in ("scripted", "random"):
            raise ValueError(f"policy must be 'scripted' or 'random', got {self.policy!r}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")


def episode_env_seed(seed: int, episode: int) -> int:
    return int(np.random.default_rng([seed, episode]).integers(2**31))


def record_episode(options: TrajectoryOptions, episode: int,
                   on_frame: Callable[[CursorPaintEnv], None] | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(frames uint8 [L, H, W, 3], actions [L, 4], return) of one episode; `on_frame(env)` sees
    the env's hidden state (cursor, target) as each recorded frame was rendered."""
    env = CursorPaintEnv(options.image_size, max_steps=options.episode_length)
    rng = np.random.default_rng([options.seed, episode, 1])
    frame, _ = env.reset(seed=episode_env_seed(options.seed, episode))
    frames, actions, total = [], [], 0.0
    for _ in range(options.episode_length):
        action = (scripted_action(env, rng, options.epsilon) if options.policy == "scripted"
                  else random_cursor_action(rng))
        frames.append(frame)
        actions.append(action)
        if on_frame is not None:
            on_frame(env)
        frame, reward, _, _, _ = env.step(action)
        total += reward
    return np.stack(frames), np.stack(actions).astype(np.float32), total


def generate_trajectory(out_dir: str, options: TrajectoryOptions, overwrite: bool = False,
                        on_sample: Callable[[], None] | None = None) -> str:
    written, episode = 0, 0
    with ShardWriter(out_dir, options.shard_size, overwrite=overwrite) as writer:
        while written < options.num_samples:
            frames, actions, total = record_episode(options, episode)
            meta = {"env": "cursor-paint", "policy": options.policy, "episode_return": total}
            if options.policy == "scripted":
                meta["epsilon"] = options.epsilon  # tells a noisier pretraining set from the demonstrations
            for sample in episode_window_samples(episode, frames, None if options.unlabelled else actions,
                                                 ACTION_SPACE, options.window, FPS, meta):
                if written == options.num_samples:
                    break
                writer.write(sample)
                written += 1
                if on_sample is not None:
                    on_sample()
            episode += 1
        return writer.close()
