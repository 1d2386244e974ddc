"""Shard views: samples in order, per-shard counts, concept statistics equal to the raw json."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter

import pytest

from mmpretrain.data.wds.skips import SkipCounter
from mmpretrain.workflow.shard_samples import (
    bar_chart,
    concept_counts,
    concepts_per_sample,
    iter_shard_samples,
    load_zeroshot_classes,
    read_samples,
    shard_table,
)


def raw_json_members(directory) -> list[dict]:
    metas = []
    for shard in sorted(directory.glob("*.tar")):
        with tarfile.open(shard) as tar:
            metas += [json.load(tar.extractfile(m)) for m in tar.getmembers() if m.name.endswith(".json")]
    return metas


def test_concept_counts_match_the_annotations(image_text_shards):
    val = image_text_shards["val"]
    samples = list(iter_shard_samples(str(val)))
    metas = raw_json_members(val)
    assert len(samples) == len(metas) == 128
    assert concept_counts(samples) == Counter(c for m in metas for c in m["classes"])
    assert concepts_per_sample(samples) == Counter(len(m["classes"]) for m in metas)
    assert [s.meta for s in samples] == metas  # spec order, nothing shuffled
    assert all(s.image is not None and s.image.size == (64, 64) and s.caption for s in samples)


def test_read_samples_and_shard_table(image_text_shards):
    val = str(image_text_shards["val"])
    first = read_samples(val, 5)
    assert [s.key for s in first] == [s.key for s in list(iter_shard_samples(val))[:5]]
    rows = shard_table(val)
    assert [r["samples"] for r in rows] == [64, 64]
    classnames, templates = load_zeroshot_classes(val)
    assert len(classnames) == 36 and all("{}" in t for t in templates)


def test_damaged_members_are_counted_not_fatal(tmp_path):
    shard = tmp_path / "shard-000000.tar"
    with tarfile.open(shard, "w") as tar:
        for name, payload in (("a.jpg", b"not an image"), ("a.txt", b"caption"), ("a.json", b"{bad")):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    skips = SkipCounter()
    (sample,) = list(iter_shard_samples(str(shard), skips))
    assert sample.image is None and sample.caption == "caption" and sample.concepts == []
    assert skips.to_dict() == {"bad_json": 1, "decode_error": 1}
    with pytest.raises(ValueError, match="classes.json"):
        load_zeroshot_classes(str(shard))


def test_bar_chart_orders_bars():
    figure = bar_chart(Counter({"b": 1, "a": 5, "c": 3}), "concepts", top=2)
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels == ["a", "c"]
    assert [p.get_width() for p in figure.axes[0].patches] == [5, 3]
    with pytest.raises(ValueError, match="nothing to plot"):
        bar_chart(Counter(), "empty")
