"""Batch concept statistics of the online selection strategies (iid, CABS-DM, CABS-FM) on the
same raw samples, as training would compute them.

Raw samples are read with the training tar reader and cut into consecutive super-batches of B;
each strategy's `SuperBatchSelector` (the object `ShardStream` calls) picks b of each, and
the kept samples' `batch_concept_stats` (what training logs per step) are averaged over the
super-batches. Single rank, so CABS-DM uses the super-batch's own concept frequencies.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure

from mmpretrain.data.sampling.selection import BatchSelection, SuperBatchId, SuperBatchSelector
from mmpretrain.data.wds.shard_spec import ShardSpec, parse_shard_spec
from mmpretrain.data.wds.skips import SkipCounter
from mmpretrain.data.wds.tar_reader import iter_tar_samples

STRATEGIES = ("iid", "cabs_dm", "cabs_fm")
METRICS = ("unique_concepts", "max_concept_count", "objects_per_sample", "concept_entropy")


@dataclass
class StrategyStats:
    """Per strategy: the mean of each batch statistic over `super_batches` super-batches of
    `super_batch_size` raw samples, each reduced to `batch_size` kept samples."""

    batch_size: int
    super_batch_size: int
    super_batches: int
    means: dict[str, dict[str, float]]

    def table(self, metrics: Sequence[str] = METRICS) -> str:
        """A fixed-width text table: one row per strategy, one column per metric."""
        width = max(len(m) for m in metrics) + 2
        lines = ["strategy".ljust(10) + "".join(m.rjust(width) for m in metrics)]
        for strategy, stats in self.means.items():
            lines.append(strategy.ljust(10) + "".join(f"{stats[m]:.2f}".rjust(width) for m in metrics))
        return "\n".join(lines)


def iter_super_batches(spec: str | ShardSpec, size: int, skips: SkipCounter) -> Iterator[list[dict[str, Any]]]:
    """Consecutive full super-batches of raw samples in spec order (a short tail is dropped)."""
    spec = parse_shard_spec(spec) if isinstance(spec, str) else spec
    batch: list[dict[str, Any]] = []
    for shard in spec.shards:
        for raw in iter_tar_samples(shard.path, skips):
            batch.append(raw)
            if len(batch) == size:
                yield batch
                batch = []


def strategy_stats(spec: str | ShardSpec, batch_size: int, filter_ratio: float = 0.75, cap: int = 10,
                   strategies: Sequence[str] = STRATEGIES, max_super_batches: int | None = None,
                   seed: int = 0, skips: SkipCounter | None = None) -> StrategyStats:
    """Run each strategy on the same super-batches; see the module docstring."""
    skips = skips if skips is not None else SkipCounter()
    selectors = {s: SuperBatchSelector(BatchSelection(strategy=s, filter_ratio=filter_ratio, cap=cap, seed=seed),
                                       batch_size) for s in strategies}
    super_batch_size = next(iter(selectors.values())).super_batch_size
    totals = {s: dict.fromkeys(METRICS, 0.0) for s in strategies}
    count = 0
    for index, raws in enumerate(iter_super_batches(spec, super_batch_size, skips)):
        if max_super_batches is not None and count == max_super_batches:
            break
        where = SuperBatchId(epoch=0, rank=0, world_size=1, worker=0, index=index)
        for strategy, selector in selectors.items():
            result = selector(raws, where)
            stats = result.statistics(result.kept)
            for metric in METRICS:
                totals[strategy][metric] += stats[metric]
        count += 1
    if count == 0:
        raise ValueError(f"{spec}: fewer than one super-batch ({super_batch_size} samples) to select from")
    means = {s: {m: v / count for m, v in t.items()} for s, t in totals.items()}
    return StrategyStats(batch_size, super_batch_size, count, means)


def strategy_bars(stats: StrategyStats, metrics: Sequence[str] = METRICS[:3]) -> Figure:
    """One panel per metric, one bar per strategy."""
    strategies = list(stats.means)
    figure = Figure(figsize=(3.2 * len(metrics), 3.0))
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    colours = ["tab:gray", "tab:blue", "tab:orange", "tab:green"]
    for axis, metric in zip(axes, metrics):
        values = [stats.means[s][metric] for s in strategies]
        axis.bar(range(len(strategies)), values, color=[colours[i % len(colours)] for i in range(len(strategies))])
        axis.set_xticks(range(len(strategies)), strategies)
        axis.set_title(metric.replace("_", " "), fontsize=10)
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle(f"mean over {stats.super_batches} super-batches: B={stats.super_batch_size} -> "
                    f"b={stats.batch_size}", fontsize=10)
    figure.tight_layout()
    return figure
