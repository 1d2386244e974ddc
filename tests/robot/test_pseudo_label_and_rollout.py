"""`mmpretrain pseudo-label` and `mmpretrain rollout` against direct computations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmpretrain.commands import pseudo_label, rollout
from mmpretrain.commands._task_loading import load_task
from mmpretrain.data.envs import FrameEnv
from mmpretrain.data.sources.trajectory import TrajectoryDecoder
from mmpretrain.data.synthetic.cursor_env import ACTION_SPACE
from mmpretrain.data.wds.shard_spec import parse_shard_spec
from mmpretrain.data.wds.skips import SkipCounter
from mmpretrain.data.wds.tar_reader import iter_tar_samples
from mmpretrain.eval.action import action_metrics
from mmpretrain.eval.rollout import FrameBufferPolicy, rollout_returns

REPO_ROOT = Path(__file__).resolve().parents[2]


def _configs(name: str, shards: dict) -> list[str]:
    return ["-c", str(REPO_ROOT / "configs/trainer/cpu.yaml"), "-c", str(REPO_ROOT / f"configs/exp/robot/{name}"),
            f"--data.init_args.train_shards={shards['train']}", f"--data.init_args.val_shards={shards['val']}",
            "--data.init_args.train_weights=null"]


def _checkpoint(config_args: list[str], path: Path) -> str:
    torch.manual_seed(0)
    task = load_task(config_args, None)
    torch.save({"state_dict": task.state_dict(), "global_step": 0}, path)
    return str(path)


def _samples(directory) -> dict[str, dict]:
    skips = SkipCounter()
    return {raw["__key__"]: raw for shard in parse_shard_spec(str(directory)).shards
            for raw in iter_tar_samples(shard.path, skips)}


def test_pseudo_label_writes_idm_labels_and_measures_them(trajectory_shards, tmp_path):
    config_args = _configs("cursor_idm.yaml", trajectory_shards)
    ckpt = _checkpoint(config_args, tmp_path / "idm.ckpt")
    out = tmp_path / "pseudo"
    assert pseudo_label.main([*config_args, "--ckpt", ckpt, "--input", str(trajectory_shards["val"]), "--out", str(out),
                              "--reference", str(trajectory_shards["val"]), "--batch-size", "5"]) == 0
    model = load_task(config_args, ckpt).model
    inputs, labelled = _samples(trajectory_shards["val"]), _samples(out)
    assert sorted(labelled) == sorted(inputs)
    decoder = TrajectoryDecoder(ACTION_SPACE)
    preds, trues = [], []
    for key, raw in labelled.items():
        meta = json.loads(raw["json"])
        assert meta["label_source"] == "idm" and meta["confidence"][-1] == 0.0
        assert raw["frames.npy"] == inputs[key]["frames.npy"]
        sample = decoder(raw)
        expected, confidence = model.predict_actions(sample["frames"].unsqueeze(0))
        assert torch.allclose(sample["actions"], expected[0], atol=1e-5)
        assert np.allclose(meta["confidence"], confidence[0].numpy(), atol=1e-4)
        preds.append(sample["actions"][:-1])
        trues.append(decoder(inputs[key])["actions"][:-1])
    report = json.loads((out / pseudo_label.METRICS_FILENAME).read_text())
    expected = action_metrics(ACTION_SPACE, torch.cat(preds), torch.cat(trues))
    assert report["all/exact_match"] == pytest.approx(expected["exact_match"])
    assert report["all/axis_dx_bin_acc"] == pytest.approx(expected["axis_dx_bin_acc"])


def test_scripted_cursor_policy_beats_random():
    env = FrameEnv("cursor-paint", 24, max_steps=64)
    scripted = rollout_returns(env, lambda frame, rng: env.scripted_action(rng), episodes=4, seed=0)
    random = rollout_returns(env, lambda frame, rng: env.random_action(rng), episodes=4, seed=0)
    assert np.mean(scripted) > np.mean(random) + 3


def test_rollout_command_matches_direct_rollout(trajectory_shards, tmp_path):
    config_args = _configs("cursor_bc.yaml", trajectory_shards)
    ckpt = _checkpoint(config_args, tmp_path / "bc.ckpt")
    assert rollout.main([*config_args, "--ckpt", ckpt, "--env", "cursor-paint", "--episodes", "2",
                         "--max-steps", "12", "--out", str(tmp_path / "rollout.json")]) == 0
    summary = json.loads((tmp_path / "rollout.json").read_text())
    policy = FrameBufferPolicy(load_task(config_args, ckpt).model, context=8)
    returns = rollout_returns(FrameEnv("cursor-paint", 24, 12), policy, 2, seed=10_000, on_reset=policy.reset)
    assert summary["return_mean"] == pytest.approx(np.mean(returns)) and summary["episodes"] == 2
