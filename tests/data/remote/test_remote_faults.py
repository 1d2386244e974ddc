"""Faults on a real loopback HTTP server: with retries no valid sample is lost, without them
every loss is counted exactly; 404s are not retried and never show credentials."""

from __future__ import annotations

import warnings

import pytest

from mmpretrain.data.wds.remote.options import ShardReadOptions
from mmpretrain.data.wds.remote.read_ahead import ShardOpener
from mmpretrain.data.wds.shard_spec import parse_shard_spec
from mmpretrain.data.wds.skips import SkipCounter
from mmpretrain.data.wds.tar_reader import iter_tar_samples
from tests.remote_servers import I2D_SIZES, Faults

FAST = dict(backoff_s=0.001, max_backoff_s=0.01, timeout_s=5)


def read_all(spec: str, options: ShardReadOptions) -> tuple[list[tuple[str, bytes]], SkipCounter]:
    skips, samples = SkipCounter(), []
    opener = ShardOpener(options)
    shards = parse_shard_spec(spec).shards
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index, shard in enumerate(shards):
            opener.hint(shards[index + 1].path if index + 1 < len(shards) else None)
            samples += [(s["__key__"], s["jpg"]) for s in iter_tar_samples(shard.path, skips, opener)]
    opener.close()
    return samples, skips


@pytest.fixture(scope="module")
def local_samples(remote_root):
    return read_all(str(remote_root / "i2d" / "{00000..00004}.tar"), ShardReadOptions())[0]


@pytest.mark.parametrize("faults", [Faults(reset_first=3), Faults(error_rate=0.3, seed=1), Faults(cut_after=5000)],
                         ids=["reset", "503", "cut"])
def test_with_retries_no_valid_sample_is_lost(http, local_samples, faults):
    http.set_faults(faults)
    samples, skips = read_all(f"{http.url}/i2d/{{00000..00004}}.tar", ShardReadOptions(retries=8, **FAST))
    assert samples == local_samples and skips.total == 0
    assert faults.requests > len(I2D_SIZES)  # the faults really happened and were retried


def test_without_retries_losses_are_counted_exactly(http, remote_root, local_samples):
    spec = f"{http.url}/i2d/{{00000..00004}}.tar"
    http.set_faults(Faults(reset_first=2))
    samples, skips = read_all(spec, ShardReadOptions(retries=0, open_ahead=False, **FAST))
    # the first two shards (12 and 0 samples) are unreadable, the rest arrive whole
    assert skips.to_dict() == {"unreadable_shard": 2} and samples == local_samples[12:]

    http.set_faults(Faults(cut_after=30000, ranges=False))  # a cut server without Range support
    samples, skips = read_all(spec, ShardReadOptions(retries=3, **FAST))
    # each cut shard keeps exactly what a local file truncated at the same byte keeps
    expected_skips, expected = SkipCounter(), []
    for index in range(len(I2D_SIZES)):
        cut = remote_root / f"cut-{index}.tar"
        cut.write_bytes((remote_root / "i2d" / f"{index:05d}.tar").read_bytes()[:30000])
        expected += [(s["__key__"], s["jpg"]) for s in iter_tar_samples(str(cut), expected_skips)]
    # (the empty shard's 10240 bytes are zeros: an intact end of archive, here as locally)
    assert skips.to_dict() == expected_skips.to_dict() == {"truncated_tar": sum(n > 0 for n in I2D_SIZES)}
    assert samples == expected and 0 < len(samples) < len(local_samples)


def test_not_found_is_permanent_and_redacted(http):
    http.set_faults(Faults(error_rate=1.0))
    skips = SkipCounter()
    with pytest.warns(UserWarning, match=r"http://\*\*\*@127.0.0.1:\d+/i2d/nope.tar .*HTTP 404") as record:
        assert list(iter_tar_samples(f"http://user:secret@{http.url[7:]}/i2d/nope.tar", skips)) == []
    assert skips.to_dict() == {"unreadable_shard": 1} and "secret" not in str(record[0].message)
    # a 503 that outlasts the retries is counted too, after exactly 1 + retries requests
    opener = ShardOpener(ShardReadOptions(retries=2, **FAST))
    with pytest.warns(UserWarning, match="after 3 tries: HTTP 503"):
        assert list(iter_tar_samples(f"{http.url}/i2d/00000.tar", skips, opener)) == []
    assert skips["unreadable_shard"] == 2 and http.faults.requests == 3


def test_failing_pipe_command_is_a_fault(http, local_samples):
    skips = SkipCounter()
    with pytest.warns(UserWarning, match="exited with status 22"):
        assert list(iter_tar_samples(f"pipe:curl -sfL {http.url}/i2d/nope.tar", skips)) == []
    assert skips.to_dict() == {"unreadable_shard": 1}
    # a command that dies mid-stream: complete samples kept, counted as truncated_tar
    with pytest.warns(UserWarning, match="exited with status 3"):
        kept = list(iter_tar_samples(f"pipe:curl -sfL {http.url}/i2d/00000.tar | head -c 30000; exit 3", skips))
    assert skips.to_dict() == {"unreadable_shard": 1, "truncated_tar": 1}
    assert [(s["__key__"], s["jpg"]) for s in kept] == local_samples[:len(kept)] and 0 < len(kept) < 12
