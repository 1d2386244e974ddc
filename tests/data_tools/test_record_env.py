"""`record_env.py` on gymnasium classic control: scripted demonstrators that beat random,
axes from a Box action space, reproducible recordings and unlabelled video of the same frames."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest

from mmpretrain.data.envs import FrameEnv
from mmpretrain.data.wds.shard_spec import parse_shard_spec
from mmpretrain.data.wds.skips import SkipCounter
from mmpretrain.data.wds.tar_reader import iter_tar_samples
from mmpretrain.eval.rollout import rollout_returns

pytest.importorskip("pygame")
REPO_ROOT = Path(__file__).resolve().parents[2]


def _record_env_main():
    spec = importlib.util.spec_from_file_location("record_env", REPO_ROOT / "data_tools" / "record_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _samples(directory: Path) -> dict[str, dict]:
    return {raw["__key__"]: raw for shard in parse_shard_spec(str(directory)).shards
            for raw in iter_tar_samples(shard.path, SkipCounter())}


def _mean_return(env: FrameEnv, policy_name: str) -> float:
    policy = getattr(env, f"{policy_name}_action")
    return float(np.mean(rollout_returns(env, lambda frame, rng: policy(rng), episodes=3, seed=0)))


@pytest.mark.parametrize("name, max_steps, margin", [("CartPole-v1", 100, 50.0), ("Pendulum-v1", 100, 250.0)])
def test_scripted_demonstrator_beats_random(name, max_steps, margin):
    env = FrameEnv(name, 24, max_steps, epsilon=0.1)
    scripted, random = _mean_return(env, "scripted"), _mean_return(env, "random")
    assert scripted > random + margin, (scripted, random)
    if name == "CartPole-v1":
        assert scripted == max_steps  # balanced for the whole episode


def test_scripted_policy_for_an_unknown_env_is_a_clear_error():
    env = FrameEnv("MountainCar-v0", 24, 8)
    with pytest.raises(ValueError, match="no scripted policy for environment 'MountainCar-v0'"):
        env.scripted_action(np.random.default_rng(0))


def test_pendulum_recording_axes_alignment_and_unlabelled_video(tmp_path):
    main = _record_env_main()
    common = ["--env", "Pendulum-v1", "--episodes", "2", "--max-steps", "16", "--image-size", "24",
              "--window", "8", "--shard-size", "2", "--seed", "5", "--epsilon", "0.5"]
    assert main([*common, "--out", str(tmp_path / "labelled")]) == 0
    assert main([*common, "--out", str(tmp_path / "again")]) == 0
    assert main([*common, "--out", str(tmp_path / "video"), "--unlabelled"]) == 0
    labelled, again, video = (_samples(tmp_path / name) for name in ("labelled", "again", "video"))
    assert len(labelled) == 4 and labelled.keys() == again.keys() == video.keys()

    for key, raw in labelled.items():
        meta = json.loads(raw["json"])
        assert meta["action_space"]["axes"][0]["max_value"] == 2.0 and meta["label_source"] == "human"
        actions = np.load(io.BytesIO(raw["actions.npy"]))
        frames = np.load(io.BytesIO(raw["frames.npy"]))
        assert actions.shape == (8, 1) and np.all(np.abs(actions) <= 2.0)
        assert frames.shape == (8, 24, 24, 3) and frames.dtype == np.uint8
        np.testing.assert_array_equal(actions, np.load(io.BytesIO(again[key]["actions.npy"])))
        np.testing.assert_array_equal(frames, np.load(io.BytesIO(video[key]["frames.npy"])))
        assert "actions.npy" not in video[key] and json.loads(video[key]["json"])["label_source"] == "none"

    # replaying the first window's actions from the same reset reproduces its frames
    first = next(raw for raw in labelled.values() if json.loads(raw["json"])["frame_start"] == 0
                 and json.loads(raw["json"])["episode"] == 0)
    env = FrameEnv("Pendulum-v1", 24, 16)
    frames, actions = np.load(io.BytesIO(first["frames.npy"])), np.load(io.BytesIO(first["actions.npy"]))
    np.testing.assert_array_equal(env.reset(5), frames[0])
    for t in range(7):
        np.testing.assert_array_equal(env.step(actions[t])[0], frames[t + 1])
