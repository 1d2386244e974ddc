"""Resuming a stream saved under another data layout: exact mode refuses with a message naming
what changed, resampled mode restarts the epoch."""

from __future__ import annotations

import pytest

from mmpretrain.data.wds.dataset import ShardStream


def _stream(spec: str, mode: str, world_size: int, rank: int = 0, **kwargs) -> ShardStream:
    return ShardStream(spec, lambda raw: {"key": raw["__key__"]}, batch_size=2, mode=mode, rank=rank,
                       world_size=world_size, num_workers=0, shuffle_buffer=0, **kwargs)


def _state_after_one_batch(stream: ShardStream) -> dict:
    batch = next(iter(stream))
    stream.observe(batch["_data_state"])
    return stream.state_dict()


def test_exact_mode_refuses_another_world_size_resampled_restarts(make_shards):
    spec = str(make_shards("w", [6, 6, 6, 6])[0].parent)
    state = _state_after_one_batch(_stream(spec, "exact", world_size=2))
    assert state["config"]["world_size"] == 2 and len(state["config"]["shards_sha256"]) == 64
    with pytest.raises(ValueError, match=r"world_size: saved 2, now 1.*mode=resampled"):
        _stream(spec, "exact", world_size=1).load_state_dict(state)
    with pytest.raises(ValueError, match="num_workers: saved 0, now 2"):
        ShardStream(spec, lambda raw: raw, batch_size=2, mode="exact", rank=0, world_size=2,
                    num_workers=2, shuffle_buffer=0).load_state_dict(state)

    resampled_state = _state_after_one_batch(_stream(spec, "resampled", world_size=2, samples_per_epoch=8))
    resumed = _stream(spec, "resampled", world_size=1, samples_per_epoch=8)
    with pytest.warns(UserWarning, match="restarting epoch 0"):
        resumed.load_state_dict(resampled_state)
    assert len(list(resumed)) == 4  # the whole epoch, from its start


def test_exact_mode_refuses_a_changed_shard_list(make_shards):
    paths = make_shards("s", [4, 4, 4])
    state = _state_after_one_batch(_stream(str(paths[0].parent), "exact", world_size=1))
    fewer = " :: ".join(str(p) for p in paths[:2])
    with pytest.raises(ValueError, match="num_shards: saved 3, now 2.*shards_sha256"):
        _stream(fewer, "exact", world_size=1).load_state_dict(state)
