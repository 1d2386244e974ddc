"""Trajectory windows: alignment (action t turns frame t into frame t+1), crops, masks, skips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmpretrain.data.sources.trajectory import TrajectoryDecoder, encode_npy
from mmpretrain.data.synthetic.cursor_env import ACTION_SPACE, CursorPaintEnv
from mmpretrain.data.synthetic.trajectory import TrajectoryOptions, episode_env_seed, generate_trajectory
from mmpretrain.data.wds.shard_spec import parse_shard_spec
from mmpretrain.data.wds.skips import SkipCounter, SkipSample
from mmpretrain.data.wds.tar_reader import iter_tar_samples


def _raw_samples(directory) -> list[dict]:
    skips = SkipCounter()
    return [raw for shard in parse_shard_spec(str(directory)).shards for raw in iter_tar_samples(shard.path, skips)]


def test_action_t_turns_frame_t_into_frame_t_plus_1(trajectory_shards):
    """Replay each window's actions in a fresh env: env.step(actions[t]) renders frames[t+1]."""
    decoder = TrajectoryDecoder(ACTION_SPACE)
    options = TrajectoryOptions()
    raws = _raw_samples(trajectory_shards["train"])
    by_episode: dict[int, list[dict]] = {}
    for raw in raws:
        sample = decoder(raw)
        by_episode.setdefault(sample["json"]["episode"], []).append(sample)
    episode, windows = next(iter(sorted(by_episode.items())))
    windows.sort(key=lambda s: s["json"]["frame_start"])
    frames = torch.cat([w["frames"] for w in windows]).permute(0, 2, 3, 1).numpy()
    actions = torch.cat([w["actions"] for w in windows]).numpy()
    env = CursorPaintEnv(options.image_size, max_steps=options.episode_length)
    frame, _ = env.reset(seed=episode_env_seed(0, episode))
    assert np.array_equal(frame, frames[0])
    for t in range(len(frames) - 1):
        frame, *_ = env.step(actions[t])
        assert np.array_equal(frame, frames[t + 1]), f"frame {t + 1} is not the outcome of action {t}"
        # and the same action is not the outcome of the previous one (the test can fail on a shift)
    shifted_env = CursorPaintEnv(options.image_size, max_steps=options.episode_length)
    shifted_env.reset(seed=episode_env_seed(0, episode))
    mismatches = sum(not np.array_equal(shifted_env.step(actions[t + 1])[0], frames[t + 1])
                     for t in range(len(frames) - 2))
    assert mismatches > 0


def test_random_crop_keeps_frames_and_actions_aligned(trajectory_shards):
    raw = _raw_samples(trajectory_shards["train"])[0]
    full = TrajectoryDecoder(ACTION_SPACE)(raw)
    torch.manual_seed(0)
    starts = set()
    for _ in range(20):
        crop = TrajectoryDecoder(ACTION_SPACE, window=5, random_crop=True)(raw)
        start = crop["json"]["crop_start"]
        starts.add(start)
        assert torch.equal(crop["frames"], full["frames"][start:start + 5])
        assert torch.equal(crop["actions"], full["actions"][start:start + 5])
    assert len(starts) > 1 and max(starts) <= full["frames"].shape[0] - 5


def _sample(steps=4, actions=True, confidence=None, space=None) -> dict:
    meta = {"label_source": "idm" if confidence is not None else "human",
            "action_space": (space or ACTION_SPACE).to_json()}
    if confidence is not None:
        meta["confidence"] = confidence
    raw = {"__key__": "k", "frames.npy": encode_npy(np.zeros((steps, 6, 6, 3), np.uint8)),
           "json": json.dumps(meta).encode()}
    if actions:
        raw["actions.npy"] = encode_npy(np.ones((steps, ACTION_SPACE.dim), np.float32))
    return raw


def test_confidence_masks_and_unlabelled_video():
    sample = TrajectoryDecoder(ACTION_SPACE, min_confidence=0.5)(_sample(confidence=[0.9, 0.2, 0.5, 0.0]))
    assert sample["action_mask"].tolist() == [True, False, True, False]
    assert TrajectoryDecoder(ACTION_SPACE)(_sample())["action_mask"].all()
    # the default threshold still drops zero-confidence steps (pseudo-labels' last step)
    default = TrajectoryDecoder(ACTION_SPACE)(_sample(confidence=[0.9, 0.2, 0.01, 0.0]))
    assert default["action_mask"].tolist() == [True, True, True, False]
    unlabelled = TrajectoryDecoder(ACTION_SPACE, require_actions=False)(_sample(actions=False))
    assert not unlabelled["action_mask"].any() and unlabelled["actions"].shape == (4, ACTION_SPACE.dim)
    batch = TrajectoryDecoder(ACTION_SPACE).collate([TrajectoryDecoder(ACTION_SPACE)(_sample())] * 3)
    assert batch["frames"].shape == (3, 4, 3, 6, 6) and batch["frames"].dtype == torch.uint8


@pytest.mark.parametrize("raw, reason", [
    (_sample(actions=False), "missing_actions"),
    ({"__key__": "k", "json": b"{}"}, "missing_frames"),
    (_sample(steps=3), "short_window"),
    (_sample(confidence=[1.0]), "bad_json"),
])
def test_bad_samples_are_skipped_with_a_reason(raw, reason):
    with pytest.raises(SkipSample) as info:
        TrajectoryDecoder(ACTION_SPACE, window=4 if reason == "short_window" else None)(raw)
    assert info.value.reason == reason


def test_action_space_mismatch_is_skipped():
    from mmpretrain.data.sources.action_space import ActionChoice, ActionSpace
    other = ActionSpace(choices=[ActionChoice("action", 4)])
    with pytest.raises(SkipSample) as info:
        TrajectoryDecoder(ACTION_SPACE)(_sample(space=other))
    assert info.value.reason == "action_space_mismatch"


def test_axis_quantization_may_differ_between_shards_and_model():
    """The shards hold continuous values; a model may tokenize them differently (OpenVLA bins)."""
    from mmpretrain.data.sources.action_space import ActionAxis, ActionSpace
    tokens = ActionSpace(buttons=ACTION_SPACE.buttons, choices=ACTION_SPACE.choices,
                         axes=[ActionAxis(a.name, bins=256, quantization="uniform", low=-8.0, high=8.0)
                               for a in ACTION_SPACE.axes])
    raw = _sample()
    assert tokens != ACTION_SPACE and tokens.same_columns(ACTION_SPACE)
    np.testing.assert_array_equal(TrajectoryDecoder(tokens)(raw)["actions"], TrajectoryDecoder(ACTION_SPACE)(raw)["actions"])
    renamed = ActionSpace(buttons=ACTION_SPACE.buttons, choices=ACTION_SPACE.choices,
                          axes=[ActionAxis("u"), ActionAxis("v")])
    with pytest.raises(SkipSample):
        TrajectoryDecoder(renamed)(raw)


def test_noisier_demonstrator_is_recorded_and_smaller_sets_are_prefixes(tmp_path):
    """A pretraining set at epsilon 0.5 says so in its json and differs from the default
    demonstrator's actions; a set of 8 windows is the first 8 of a set of 16 (same seed)."""
    for name, count, epsilon in (("noisy", 16, 0.5), ("demos", 16, 0.2), ("demos_small", 8, 0.2)):
        generate_trajectory(str(tmp_path / name), TrajectoryOptions(num_samples=count, seed=3, epsilon=epsilon,
                                                                    episode_length=16))
    noisy, demos, small = (_raw_samples(tmp_path / n) for n in ("noisy", "demos", "demos_small"))
    assert {json.loads(r["json"])["epsilon"] for r in noisy} == {0.5}
    assert {json.loads(r["json"])["epsilon"] for r in demos} == {0.2}
    assert any(a["actions.npy"] != b["actions.npy"] for a, b in zip(noisy, demos))
    assert [r["actions.npy"] for r in small] == [r["actions.npy"] for r in demos[:8]]
