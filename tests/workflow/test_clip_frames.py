"""Trajectory windows and video clips read back equal what the synthetic generators wrote."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmpretrain.data.synthetic.cursor_env import ACTION_SPACE
from mmpretrain.data.synthetic.trajectory import TrajectoryOptions, record_episode
from mmpretrain.data.synthetic.video_text import VideoTextOptions, make_sample
from mmpretrain.data.wds.skips import SkipCounter
from mmpretrain.workflow.clip_frames import (describe_action, frames_strip, read_trajectory_windows,
                                             read_video_clips)


def test_trajectory_windows_hold_the_recorded_frames_and_actions(trajectory_shards):
    skips = SkipCounter()
    windows = read_trajectory_windows(str(trajectory_shards["val"]), ACTION_SPACE, limit=3, skips=skips)
    assert len(windows) == 3 and not skips.to_dict()
    # the conftest fixture: 16 windows of 8 frames, seed 1, default episode options
    frames, actions, _ = record_episode(TrajectoryOptions(num_samples=16, shard_size=8, seed=1), 0)
    for index, window in enumerate(windows):
        start = window["json"]["frame_start"]
        assert start == 8 * index and window["json"]["episode"] == 0
        np.testing.assert_array_equal(window["frames"].permute(0, 2, 3, 1).numpy(), frames[start:start + 8])
        np.testing.assert_array_equal(window["actions"].numpy(), actions[start:start + 8])


def test_describe_action_names_every_column():
    text = describe_action(torch.tensor([1.0, 3.0, -2.04, 2.0]), ACTION_SPACE)
    assert text.splitlines() == ["click=1", "dx=+3.0", "dy=-2.0", "colour=2"]


def test_video_clips_carry_caption_and_foil(video_text_shards):
    clips = read_video_clips(str(video_text_shards["val"]), limit=2, num_frames=8)
    options = VideoTextOptions(num_samples=32, shard_size=16, seed=1)
    for index, clip in enumerate(clips):
        written = make_sample(index, options)
        assert clip.key == written["__key__"]
        assert clip.caption == written["txt"] and clip.foil == written["json"]["foil_caption"]
        assert clip.foil != clip.caption and sorted(clip.foil.split()) == sorted(clip.caption.split())
        assert clip.frames_T3HW.shape == (8, 3, 32, 32) and clip.frames_T3HW.dtype == torch.uint8


def test_frames_strip_draws_one_titled_panel_per_frame():
    frames = torch.zeros(5, 3, 8, 8, dtype=torch.uint8)
    figure = frames_strip(frames, [f"a{t}" for t in range(5)], title="clip")
    assert [axis.get_title() for axis in figure.get_axes()] == [f"a{t}" for t in range(5)]
    with pytest.raises(ValueError, match="titles for 5 frames"):
        frames_strip(frames, ["a"])
    with pytest.raises(ValueError, match="uint8 frames"):
        frames_strip(frames.float())
