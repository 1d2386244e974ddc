from __future__ import annotations

import json

import pytest

from mmpretrain.data.wds.shard_spec import parse_shard_spec


def test_brace_pattern_expands_in_order_with_sizes(make_shards):
    paths = make_shards("a", [3, 4, 5])
    spec = parse_shard_spec(str(paths[0].parent / "shard-{000000..000002}.tar"))
    assert [s.path for s in spec.shards] == [str(p) for p in paths]
    assert [s.size for s in spec.shards] == [3, 4, 5]
    assert spec.total_size == 12 and spec.num_sources == 1 and spec.weights is None


def test_double_colon_list_and_directory_sources(make_shards):
    a = make_shards("a", [2, 2])
    b = make_shards("b", [5])
    joined = parse_shard_spec(f"{a[0].parent}/shard-{{000000..000001}}.tar::{b[0]}")
    as_list = parse_shard_spec([f"{a[0].parent}/shard-{{000000..000001}}.tar", str(b[0])])
    from_dirs = parse_shard_spec([str(a[0].parent), str(b[0].parent)])
    for spec in (joined, as_list, from_dirs):
        assert [s.path for s in spec.shards] == [str(a[0]), str(a[1]), str(b[0])]
        assert [s.source for s in spec.shards] == [0, 0, 1]
        assert spec.num_sources == 2


def test_directory_lists_tar_files_sorted(make_shards, tmp_path):
    paths = make_shards("d", [1, 1, 1])
    (tmp_path / "d" / "notes.txt").write_text("not a shard")
    spec = parse_shard_spec(str(tmp_path / "d"))
    assert [s.path for s in spec.shards] == sorted(str(p) for p in paths)


def test_missing_sizes_json_gives_none_and_exact_counting_fills_them(make_shards):
    paths = make_shards("n", [3, 6], sizes_json=False)
    spec = parse_shard_spec([str(p) for p in paths])
    assert [s.size for s in spec.shards] == [None, None] and spec.total_size is None
    assert [s.size for s in spec.with_counted_sizes().shards] == [3, 6]


def test_sizes_json_without_entry_gives_none(make_shards, tmp_path):
    paths = make_shards("p", [3, 4])
    (tmp_path / "p" / "sizes.json").write_text(json.dumps({paths[0].name: 3}))
    assert [s.size for s in parse_shard_spec([str(p) for p in paths]).shards] == [3, None]


def test_weights_are_per_sample_source_fractions(make_shards):
    a = make_shards("a", [10, 30])
    b = make_shards("b", [5])
    spec = parse_shard_spec([str(a[0].parent), str(b[0].parent)], weights=[3.0, 1.0])
    probs = spec.draw_weights()
    # a draw yields the whole shard: expected samples per draw from a = 3/40 * (10 + 30) = 3
    assert probs == pytest.approx([3 / 40, 3 / 40, 1 / 5])
    pooled = parse_shard_spec([str(a[0].parent), str(b[0].parent)]).draw_weights()
    assert pooled == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("spec", ["", "  ", [], ["::"]])
def test_empty_spec_is_rejected(spec):
    with pytest.raises(ValueError, match="empty"):
        parse_shard_spec(spec)


def test_missing_files_are_named(make_shards, tmp_path):
    make_shards("m", [1, 1])
    pattern = str(tmp_path / "m" / "shard-{000000..000003}.tar")
    with pytest.raises(ValueError, match=r"2 of 4 shard files do not exist.*shard-000002\.tar"):
        parse_shard_spec(pattern)


def test_directory_without_shards_is_rejected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no"):
        parse_shard_spec(str(tmp_path / "empty"))


def test_weight_count_and_values_are_checked(make_shards):
    a = make_shards("a", [1])
    with pytest.raises(ValueError, match="2 sources but 1 mixture weights"):
        parse_shard_spec(f"{a[0]}::{a[0]}", weights=[1.0])
    with pytest.raises(ValueError, match="non-negative"):
        parse_shard_spec(f"{a[0]}::{a[0]}", weights=[1.0, -1.0])


def test_bad_sizes_json_is_rejected(make_shards, tmp_path):
    paths = make_shards("bad", [1])
    (tmp_path / "bad" / "sizes.json").write_text("{not json")
    with pytest.raises(ValueError, match="sizes.json"):
        parse_shard_spec(str(paths[0]))
