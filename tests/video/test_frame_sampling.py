"""Frame indices: uniform (eval), random-offset strided (train), target fps, short clips."""

import random

import pytest

from mmpretrain.data.video.frame_sampling import FrameSampler, strided_indices, uniform_indices


def test_uniform_takes_segment_centres():
    assert uniform_indices(16, 8) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert uniform_indices(10, 4) == [1, 3, 6, 8]
    assert uniform_indices(5, 1) == [2]


def test_uniform_repeats_frames_of_a_short_clip():
    assert uniform_indices(3, 6) == [0, 0, 1, 1, 2, 2]


def test_strided_offsets_cover_every_valid_start_and_keep_the_stride():
    rng = random.Random(0)
    seen = set()
    for _ in range(200):
        indices = strided_indices(20, 4, 3, rng)
        assert [b - a for a, b in zip(indices, indices[1:])] == [3, 3, 3]
        seen.add(indices[0])
    assert seen == set(range(0, 20 - 10 + 1))  # span (4-1)*3+1 = 10


def test_strided_shrinks_the_stride_to_fit_and_falls_back_to_uniform():
    assert strided_indices(7, 4, 5, random.Random(0)) == [0, 2, 4, 6]
    assert strided_indices(3, 4, 2, random.Random(0)) == uniform_indices(3, 4)


def test_target_fps_sets_the_stride_from_the_clip_fps():
    sampler = FrameSampler(num_frames=4, mode="strided", stride=1, target_fps=5.0)
    assert sampler.stride_for(30.0) == 6
    assert sampler.stride_for(None) == 1  # unknown fps: the configured stride
    indices = sampler(100, fps=30.0, rng=random.Random(1))
    assert [b - a for a, b in zip(indices, indices[1:])] == [6, 6, 6]


def test_uniform_sampler_is_deterministic_and_ignores_fps():
    sampler = FrameSampler(num_frames=8, mode="uniform")
    assert sampler(16, fps=30.0) == sampler(16) == [1, 3, 5, 7, 9, 11, 13, 15]


@pytest.mark.parametrize("kwargs", [{"num_frames": 0}, {"mode": "random"}, {"stride": 0},
                                    {"target_fps": 0.0}])
def test_invalid_sampler_settings_are_rejected(kwargs):
    with pytest.raises(ValueError):
        FrameSampler(**kwargs)
