"""ShardStream over URL specs: the same batches and the same mid-epoch resume as local shards;
the shard cache is filled atomically and serves later epochs."""

from __future__ import annotations

import pytest

from mmpretrain.data.wds.remote.cache import cache_path, evict_to
from mmpretrain.data.wds.remote.options import ShardReadOptions
from mmpretrain.data.wds.remote.read_ahead import open_shard
from tests.data.test_shard_stream import batch_keys, final_skips, interrupted_run, run, stream
from tests.remote_servers import Faults


@pytest.mark.parametrize("mode", ["exact", "resampled"])
def test_url_spec_streams_and_resumes_exactly_like_local(http, remote_root, mode):
    local = str(remote_root / "i2d" / "{00000..00004}.tar")
    remote = f"{http.url}/i2d/{{00000..00004}}.tar"
    options = dict(mode=mode, num_workers=2, shuffle_buffer=7, seed=3, batch_size=3,
                   samples_per_epoch=36 if mode == "resampled" else None)
    full_local = run(stream(local, **options), 2)
    full_remote = run(stream(remote, **options), 2)
    assert [b["key"] for b in full_remote] == [b["key"] for b in full_local]
    assert [b["_data_state"] for b in full_remote] == [b["_data_state"] for b in full_local]
    # same shard list hash (basenames), so a local run's state also resumes on the URL spec
    delivered, _, rest = interrupted_run(remote, options)
    assert batch_keys(delivered) + batch_keys(rest) == batch_keys(full_local)
    assert len(delivered) + len(rest) == len(full_local) and final_skips(rest) == final_skips(full_local)


def test_faults_inside_the_stream_show_in_skip_counts(http):
    http.set_faults(Faults(reset_first=100))  # every shard request fails
    dataset = stream(f"{http.url}/i2d/{{00000..00004}}.tar", mode="exact", num_workers=0, batch_size=3,
                     read_options=ShardReadOptions(retries=0, open_ahead=False))
    with pytest.warns(UserWarning, match="counted as unreadable_shard"), pytest.raises(RuntimeError) as error:
        run(dataset, 0)
    assert "'unreadable_shard': 5" in str(error.value)


def test_cache_is_written_atomically_and_serves_later_reads(http, remote_root, tmp_path):
    url = f"{http.url}/i2d/00000.tar"
    expected = (remote_root / "i2d" / "00000.tar").read_bytes()
    options = ShardReadOptions(cache_dir=str(tmp_path / "cache"), retries=0)
    http.set_faults(Faults(cut_after=30000, ranges=False))
    with pytest.raises(Exception, match="at byte 30000"), open_shard(url, options) as shard:
        shard.read()
    assert list((tmp_path / "cache").iterdir()) == []  # no half shard, not even a partial file
    http.set_faults(Faults())
    with open_shard(url, options) as shard:
        assert shard.read() == expected
    assert cache_path(options.cache_dir, url).read_bytes() == expected
    requests = http.faults.requests
    with open_shard(url, options) as shard:
        assert shard.read() == expected and http.faults.requests == requests  # served from the cache
    # a stream closed before its last byte (the close drains only a short tail) is not kept
    other = f"{http.url}/i2d/00002.tar"
    http.set_faults(Faults(cut_after=30000, ranges=False))
    with open_shard(other, ShardReadOptions(cache_dir=options.cache_dir, retries=0)) as shard:
        shard.read(100)
    assert not cache_path(options.cache_dir, other).exists()
    http.set_faults(Faults())
    # least recently used first, down to the cap
    for name in ("00002.tar", "00003.tar"):
        with open_shard(f"{http.url}/i2d/{name}", options) as shard:
            shard.read()
    evict_to(tmp_path / "cache", max_bytes=2 * len(expected))
    assert sorted(p.name.split("-", 1)[1] for p in (tmp_path / "cache").iterdir()) == ["00002.tar", "00003.tar"]
