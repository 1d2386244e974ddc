from __future__ import annotations

import io
import tarfile
from pathlib import Path

from mmpretrain.data.wds.skips import SkipCounter
from mmpretrain.data.wds.tar_reader import count_tar_samples, iter_tar_samples


def write_members(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def read_all(path: Path) -> tuple[list[dict], SkipCounter]:
    skips = SkipCounter()
    return list(iter_tar_samples(str(path), skips)), skips


def test_groups_members_by_key_with_index_and_url(tmp_path, tar_tools):
    path = tar_tools.write(tmp_path / "s.tar", [tar_tools.image_text_sample(f"k{i}", i) for i in range(3)])
    samples, skips = read_all(path)
    assert [s["__key__"] for s in samples] == ["k0", "k1", "k2"]
    assert [s["__index__"] for s in samples] == [0, 1, 2]
    assert all(s["__url__"] == str(path) for s in samples)
    assert set(samples[1]) == {"__key__", "__url__", "__index__", "jpg", "json", "txt"}
    assert samples[1]["txt"] == b"caption number 1"
    assert skips.to_dict() == {}
    assert count_tar_samples(str(path)) == 3


def test_key_is_basename_up_to_first_dot(tmp_path):
    path = write_members(tmp_path / "dots.tar", [("a.b.jpg", b"x"), ("a.b.TXT", b"y"), ("c.seg.npy", b"z")])
    samples, _ = read_all(path)
    assert [(s["__key__"], sorted(k for k in s if not k.startswith("__"))) for s in samples] == [
        ("a", ["b.jpg", "b.txt"]), ("c", ["seg.npy"])]


def test_bad_members_are_skipped_and_counted(tmp_path):
    path = write_members(tmp_path / "bad.tar", [
        ("__meta__", b"ignored silently"),
        ("s0.jpg", b"img0"), ("s0.txt", b"cap0"),
        ("s1.jpg", b""), ("s1.txt", b"cap1"),          # zero-byte member
        ("s2.txt", b"first"), ("s2.txt", b"second"),   # duplicate member
        ("README", b"no extension"),
        ("s3.jpg", b"img3"), ("s3.txt", b"cap3"),
        ("s0.json", b"{}"),                           # key s0 again, not adjacent
        ("s4.jpg", b""),                              # sample with nothing but an empty member
        ("s5.txt", b"cap5"),
    ])
    samples, skips = read_all(path)
    assert [s["__key__"] for s in samples] == ["s0", "s1", "s2", "s3", "s5"]
    assert "jpg" not in samples[1] and samples[2]["txt"] == b"first"
    assert [s["__index__"] for s in samples] == [0, 1, 2, 3, 4]
    assert skips.to_dict() == {"duplicate_key": 1, "duplicate_member": 1, "empty_member": 2,
                               "unrecognized_member": 1}
    assert count_tar_samples(str(path)) == len(samples)


def test_truncated_tar_keeps_complete_samples_and_counts_once(tmp_path, tar_tools):
    path = tar_tools.write(tmp_path / "t.tar", [tar_tools.image_text_sample(f"k{i}", i) for i in range(5)])
    with tarfile.open(path) as archive:
        cut_member = next(m for m in archive.getmembers() if m.name == "k3.json")
    data = path.read_bytes()
    path.write_bytes(data[: cut_member.offset_data + cut_member.size // 2])
    samples, skips = read_all(path)
    # k3 was being assembled (jpg read, json cut): dropped as possibly incomplete
    assert [s["__key__"] for s in samples] == ["k0", "k1", "k2"]
    assert skips.to_dict() == {"truncated_tar": 1}


def test_truncated_inside_a_header_is_also_a_truncation(tmp_path, tar_tools):
    path = tar_tools.write(tmp_path / "h.tar", [tar_tools.image_text_sample(f"k{i}", i) for i in range(3)])
    with tarfile.open(path) as archive:
        header_of_k2 = next(m for m in archive.getmembers() if m.name == "k2.jpg").offset
    path.write_bytes(path.read_bytes()[: header_of_k2 + 100])
    samples, skips = read_all(path)
    # the cut could have removed more members of k1 as well, so k1 is dropped too
    assert [s["__key__"] for s in samples] == ["k0"]
    assert skips.to_dict() == {"truncated_tar": 1}


def test_not_a_tar_and_missing_file(tmp_path):
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"\x89PNG this is not a tar archive" * 40)
    samples, skips = read_all(garbage)
    assert samples == [] and skips.to_dict() == {"corrupt_tar": 1}
    samples, skips = read_all(tmp_path / "gone.tar")
    assert samples == [] and skips.to_dict() == {"unreadable_shard": 1}


def test_skip_counter_merge_and_round_trip():
    a = SkipCounter({"decode_error": 2})
    a.add("missing_caption")
    b = SkipCounter.from_dict({"decode_error": 1, "truncated_tar": 1})
    merged = SkipCounter().merge(a).merge(b.to_dict())
    assert merged.to_dict() == {"decode_error": 3, "missing_caption": 1, "truncated_tar": 1}
    assert merged.total == 5 and merged["nothing"] == 0
    assert SkipCounter.from_dict(merged.to_dict()) == merged
