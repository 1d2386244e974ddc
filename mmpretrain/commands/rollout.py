"""`mmpretrain rollout`: evaluate a trained policy (or the scripted/random baselines) in its environment.

    mmpretrain rollout -c configs/trainer/cpu.yaml -c configs/exp/robot/cursor_bc.yaml \
        --ckpt runs/robot/cursor_bc/checkpoints/last.ckpt --env cursor-paint --episodes 16
    mmpretrain rollout --policy scripted --env ALE/Breakout-v5 --image-size 36 --episodes 4

Prints and (with `--out`) writes the return summary as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmpretrain.commands._task_loading import load_task, split_config_args
from mmpretrain.data.envs import FrameEnv
from mmpretrain.data.wds.writer import write_json_atomic
from mmpretrain.eval.rollout import FrameBufferPolicy, return_summary, rollout_returns

HELP = "roll a trained policy (or scripted/random) out in its environment; report returns"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmpretrain rollout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, help="cursor-paint or a gymnasium id (e.g. ALE/Breakout-v5)")
    parser.add_argument("--policy", choices=("checkpoint", "scripted", "random"), default="checkpoint")
    parser.add_argument("--ckpt", help="policy checkpoint (with -c configs of its run)")
    parser.add_argument("--context", type=int, help="frames the policy sees (default: its encoder max_frames)")
    parser.add_argument("--image-size", type=int, help="frame side (default: the encoder's image_size)")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=64)
    parser.add_argument("--seed", type=int, default=10_000, help="episode e uses env seed seed+e")
    parser.add_argument("--out", help="write the summary JSON here")
    return parser


def main(argv: list[str]) -> int:
    config_args, rest = split_config_args(argv)
    args = build_parser().parse_args(rest)
    on_reset = None
    if args.policy == "checkpoint":
        if args.ckpt is None or not config_args:
            raise SystemExit("mmpretrain rollout: --policy checkpoint needs --ckpt and the run's -c configs")
        model = load_task(config_args, args.ckpt).model
        encoder = model.encoder
        image_size = args.image_size or encoder.image_size
        env = FrameEnv(args.env, image_size, args.max_steps)
        if env.action_space != model.action_space:
            raise SystemExit(f"environment {args.env!r} has action space {env.action_space.to_json()}, "
                             f"the policy {model.action_space.to_json()}")
        policy = FrameBufferPolicy(model, args.context or encoder.max_frames)
        on_reset = policy.reset
    else:
        env = FrameEnv(args.env, args.image_size or 24, args.max_steps)
        policy = env.scripted_action if args.policy == "scripted" else env.random_action
        policy = (lambda act: (lambda frame, rng: act(rng)))(policy)
    summary = {"env": args.env, "policy": args.policy, "ckpt": args.ckpt,
               **return_summary(rollout_returns(env, policy, args.episodes, args.seed, on_reset))}
    print(json.dumps(summary, indent=2, sort_keys=True))
    if args.out:
        write_json_atomic(Path(args.out), summary)
    return 0
