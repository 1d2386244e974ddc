"""Per-strategy batch statistics over super-batches, checked against a direct computation."""

from __future__ import annotations

import pytest

from mmpretrain.data.sampling.concepts import concepts_from_json
from mmpretrain.data.sampling.stats import batch_concept_stats
from mmpretrain.data.wds.shard_spec import parse_shard_spec
from mmpretrain.data.wds.skips import SkipCounter
from mmpretrain.data.wds.tar_reader import iter_tar_samples
from mmpretrain.workflow.selection_stats import METRICS, strategy_bars, strategy_stats


def _all_concepts(spec: str) -> list[list[str]]:
    skips = SkipCounter()
    return [concepts_from_json(raw.get("json"))
            for shard in parse_shard_spec(spec).shards for raw in iter_tar_samples(shard.path, skips)]


def test_fm_matches_a_direct_most_objects_selection(image_text_shards):
    spec = str(image_text_shards["val"])
    stats = strategy_stats(spec, batch_size=8, filter_ratio=0.75)
    assert (stats.super_batch_size, stats.super_batches) == (32, 128 // 32)
    concepts = _all_concepts(spec)
    expected = dict.fromkeys(METRICS, 0.0)
    for start in range(0, 128, 32):
        chunk = concepts[start:start + 32]
        kept = sorted(chunk, key=len, reverse=True)[:8]  # stable: earlier sample wins ties
        for metric, value in batch_concept_stats(kept).items():
            expected[metric] += value / 4
    assert stats.means["cabs_fm"] == pytest.approx(expected)


def test_strategies_shape_the_batch_as_designed(image_text_shards):
    means = strategy_stats(str(image_text_shards["val"]), batch_size=8, filter_ratio=0.75).means
    assert means["cabs_dm"]["unique_concepts"] > means["iid"]["unique_concepts"]
    assert means["cabs_dm"]["max_concept_count"] < means["iid"]["max_concept_count"]
    assert means["cabs_fm"]["objects_per_sample"] > max(means["iid"]["objects_per_sample"],
                                                        means["cabs_dm"]["objects_per_sample"])


def test_limit_table_and_errors(image_text_shards):
    spec = str(image_text_shards["val"])
    stats = strategy_stats(spec, batch_size=8, filter_ratio=0.75, strategies=["iid"], max_super_batches=1)
    assert stats.super_batches == 1 and list(stats.means) == ["iid"]
    lines = stats.table().splitlines()
    assert lines[0].split() == ["strategy", *METRICS]
    assert float(lines[1].split()[1]) == pytest.approx(stats.means["iid"]["unique_concepts"], abs=0.005)
    with pytest.raises(ValueError, match="fewer than one super-batch"):
        strategy_stats(spec, batch_size=128, filter_ratio=0.75)


def test_bars_show_the_means(image_text_shards):
    stats = strategy_stats(str(image_text_shards["val"]), batch_size=8, filter_ratio=0.75, max_super_batches=1)
    figure = strategy_bars(stats, ["unique_concepts", "objects_per_sample"])
    axes = figure.get_axes()
    assert len(axes) == 2
    heights = [patch.get_height() for patch in axes[1].patches]
    assert heights == pytest.approx([stats.means[s]["objects_per_sample"] for s in ("iid", "cabs_dm", "cabs_fm")])
