"""ShardWriter: rollover, sizes.json, brace spec, member encoding, determinism, atomicity."""

import json
import tarfile

import pytest
import webdataset as wds
from braceexpand import braceexpand

from mmpretrain.data.wds.writer import ShardWriter


def _samples(n):
    return [
        {"__key__": f"{i:04d}", "jpg": bytes([i, 255 - i]) * 7, "txt": f"caption {i} é",
         "json": {"index": i, "name": "ü"}}
        for i in range(n)
    ]


def _write(out_dir, samples, shard_size, **kwargs):
    with ShardWriter(str(out_dir), shard_size, **kwargs) as writer:
        for sample in samples:
            writer.write(sample)
        return writer.close()


def test_rollover_sizes_and_spec(tmp_path):
    spec = _write(tmp_path, _samples(7), shard_size=3)

    assert spec == f"{tmp_path}/shard-{{000000..000002}}.tar"
    paths = list(braceexpand(spec))
    assert [p.rsplit("/", 1)[1] for p in paths] == [
        "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    sizes = json.loads((tmp_path / "sizes.json").read_text())
    assert sizes == {"shard-000000.tar": 3, "shard-000001.tar": 3, "shard-000002.tar": 1}
    for path in paths:
        with tarfile.open(path) as tar:
            names = tar.getnames()
        assert len(names) == 3 * sizes[path.rsplit("/", 1)[1]]
    assert not list(tmp_path.glob("*.tmp"))


def test_members_are_encoded_and_readable_by_webdataset(tmp_path):
    samples = _samples(5)
    spec = _write(tmp_path, samples, shard_size=2)

    read = list(wds.WebDataset(spec, shardshuffle=False))
    assert [s["__key__"] for s in read] == [s["__key__"] for s in samples]
    for got, expected in zip(read, samples):
        assert got["jpg"] == expected["jpg"]
        assert got["txt"].decode("utf-8") == expected["txt"]
        assert json.loads(got["json"]) == expected["json"]


def test_fixed_headers_make_output_byte_identical(tmp_path):
    _write(tmp_path / "a", _samples(5), shard_size=2)
    _write(tmp_path / "b", _samples(5), shard_size=2)

    for name in ("shard-000000.tar", "shard-000001.tar", "shard-000002.tar", "sizes.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    with tarfile.open(tmp_path / "a" / "shard-000000.tar") as tar:
        info = tar.getmembers()[0]
    assert (info.mtime, info.uid, info.gid) == (0, 0, 0)


def test_exception_keeps_finished_shards_and_drops_partial(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(str(tmp_path), 3) as writer:
            for sample in _samples(4):
                writer.write(sample)
            raise RuntimeError("boom")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000000.tar"]


def test_refuses_existing_shards_unless_overwrite(tmp_path):
    _write(tmp_path, _samples(6), shard_size=2)
    with pytest.raises(FileExistsError, match="overwrite"):
        ShardWriter(str(tmp_path), 2)

    spec = _write(tmp_path, _samples(2), shard_size=2, overwrite=True)

    assert spec.endswith("shard-{000000..000000}.tar")
    assert sorted(p.name for p in tmp_path.glob("*.tar")) == ["shard-000000.tar"]
    assert json.loads((tmp_path / "sizes.json").read_text()) == {"shard-000000.tar": 2}


def test_sizes_json_keeps_other_prefixes(tmp_path):
    _write(tmp_path, _samples(3), shard_size=2, prefix="train")
    _write(tmp_path, _samples(1), shard_size=2, prefix="val")

    assert json.loads((tmp_path / "sizes.json").read_text()) == {
        "train-000000.tar": 2, "train-000001.tar": 1, "val-000000.tar": 1}


def test_empty_writer_returns_empty_spec(tmp_path):
    assert _write(tmp_path, [], shard_size=2) == ""
    assert json.loads((tmp_path / "sizes.json").read_text()) == {}


@pytest.mark.parametrize("sample, message", [
    ({"__key__": "a.b", "txt": "x"}, "without '.'"),
    ({"txt": "x"}, "__key__"),
    ({"__key__": "a"}, "no members"),
    ({"__key__": "a", "npy": 3}, "expected bytes, str, dict or list"),
])
def test_bad_samples_raise_clear_errors(tmp_path, sample, message):
    writer = ShardWriter(str(tmp_path), 2)
    with pytest.raises((ValueError, TypeError), match=message):
        writer.write(sample)
    writer.abort()


def test_duplicate_key_in_shard_is_rejected(tmp_path):
    writer = ShardWriter(str(tmp_path), 4)
    writer.write({"__key__": "a", "txt": "x"})
    with pytest.raises(ValueError, match="duplicate sample key 'a'"):
        writer.write({"__key__": "a", "txt": "y"})
    writer.abort()


def test_bad_member_leaves_no_partial_sample(tmp_path):
    with ShardWriter(str(tmp_path), 4) as writer:
        writer.write({"__key__": "good", "txt": "x"})
        with pytest.raises(TypeError):
            writer.write({"__key__": "bad", "jpg": b"\xff\xd8", "npy": 3})
        writer.close()

    with tarfile.open(tmp_path / "shard-000000.tar") as tar:
        assert tar.getnames() == ["good.txt"]
    assert json.loads((tmp_path / "sizes.json").read_text()) == {"shard-000000.tar": 1}
