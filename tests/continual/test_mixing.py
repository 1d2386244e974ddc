"""BatchMix: rows per pool; while the buffer is empty its share goes to P and D."""

from __future__ import annotations

import pytest

from mmpretrain.continual.mixing import BatchMix


def test_default_ratios_split_the_batch():
    mix = BatchMix(64)
    assert mix.counts(0) == (32, 32, 0)  # first task: no past tasks, B's share to P and D
    assert mix.counts(3) == (21, 22, 21)
    assert sum(mix.counts(1)) == 64


def test_ratios_follow_lambdas():
    assert BatchMix(100, 0.0, 1.0, 0.0).counts(2) == (0, 100, 0)
    assert BatchMix(100, 0.5, 0.5, 0.0).counts(2) == (50, 50, 0)
    assert BatchMix(100, 0.0, 0.5, 0.5).counts(0) == (0, 100, 0)
    assert BatchMix(100, 0.0, 0.5, 0.5).counts(1) == (0, 50, 50)


@pytest.mark.parametrize("args", [(8, -0.1, 0.5, 0.5), (8, 0.5, 0.0, 0.5), (0, 0.3, 0.3, 0.3)])
def test_bad_ratios(args):
    with pytest.raises(ValueError):
        BatchMix(*args)
