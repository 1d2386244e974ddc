"""Record trajectories from an environment into trajectory-window shards (true actions).

    python data_tools/record_env.py --env ALE/Breakout-v5 --out data/robot/breakout/labelled \
        --episodes 8 --image-size 36 --window 8 --policy scripted
    python data_tools/record_env.py --env cursor-paint --out data/robot/cursor/video --unlabelled ...
    python data_tools/record_env.py --env cursor-paint --policy checkpoint \
        --ckpt runs/robot/cursor_bc/checkpoints/last.ckpt -c configs/exp/robot/cursor_bc.yaml ...

Episode e is reset with env seed `seed + e` and its policy RNG is seeded by (seed, e), so an
`--unlabelled` run ("unlabelled video": frames only, `label_source: none`) with the same flags
holds the same frames under the same keys as a labelled run. Envs: `cursor-paint` or a
gymnasium id (Atari via ale-py; classic control such as CartPole-v1 and Pendulum-v1 renders with pygame).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from mmpretrain.data.envs import FrameEnv  # noqa: E402
from mmpretrain.data.sources.trajectory_episodes import episode_window_samples  # noqa: E402
from mmpretrain.data.wds.writer import ShardWriter  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, help="cursor-paint or a gymnasium id")
    parser.add_argument("--out", required=True, help="output directory for the shards")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=256, help="steps per episode at most")
    parser.add_argument("--image-size", type=int, default=36)
    parser.add_argument("--window", type=int, default=8, help="frames per sample")
    parser.add_argument("--policy", choices=("scripted", "random", "checkpoint"), default="scripted")
    parser.add_argument("--epsilon", type=float, default=0.2, help="scripted policy: random-action chance")
    parser.add_argument("--ckpt", help="--policy checkpoint: a policy checkpoint")
    parser.add_argument("-c", "--config", action="append", default=[], help="--policy checkpoint: run configs")
    parser.add_argument("--unlabelled", action="store_true", help="write frames without actions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--overwrite", action="store_true")
    return parser


def make_policy(args: argparse.Namespace, env: FrameEnv):
    if args.policy == "scripted":
        return lambda frame, rng: env.scripted_action(rng), None
    if args.policy == "random":
        return lambda frame, rng: env.random_action(rng), None
    if not args.ckpt or not args.config:
        raise SystemExit("--policy checkpoint needs --ckpt and -c CONFIG")
    from mmpretrain.commands._task_loading import load_task
    from mmpretrain.eval.rollout import FrameBufferPolicy

    config_args = [arg for path in args.config for arg in ("-c", path)]
    model = load_task(config_args, args.ckpt).model
    policy = FrameBufferPolicy(model, model.encoder.max_frames)
    return policy, policy.reset


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = FrameEnv(args.env, args.image_size, args.max_steps, args.epsilon)
    policy, on_reset = make_policy(args, env)
    returns = []
    with ShardWriter(args.out, args.shard_size, overwrite=args.overwrite) as writer:
        for episode in range(args.episodes):
            rng = np.random.default_rng([args.seed, episode])
            if on_reset is not None:
                on_reset()
            frame, done, total = env.reset(args.seed + episode), False, 0.0
            frames, actions = [], []
            while not done:
                action = policy(frame, rng)
                frames.append(frame)
                actions.append(action)
                frame, reward, done = env.step(action)
                total += reward
            returns.append(total)
            meta = {"env": args.env, "policy": args.policy, "episode_return": total}
            for sample in episode_window_samples(episode, np.stack(frames),
                                                 None if args.unlabelled else np.stack(actions).astype(np.float32),
                                                 env.action_space, args.window, 15.0, meta):
                writer.write(sample)
        spec = writer.close()
    print(f"wrote {writer.num_samples} windows from {args.episodes} episodes "
          f"(mean return {np.mean(returns):.2f}): {spec}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
