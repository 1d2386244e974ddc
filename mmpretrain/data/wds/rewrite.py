"""Stream every raw sample of a shard set and write a transformed/filtered copy (+ sizes.json).

Used by the offline curation tools: the transform returns the (possibly edited) raw sample to
keep it or None to drop it. Unreadable tar members are skipped and counted by the reader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mmpretrain.data.wds.shard_spec import parse_shard_spec
from mmpretrain.data.wds.skips import SkipCounter
from mmpretrain.data.wds.tar_reader import iter_tar_samples
from mmpretrain.data.wds.writer import ShardWriter

RawSample = dict[str, Any]


@dataclass
class RewriteReport:
    read: int = 0
    written: int = 0
    spec: str = ""
    skips: dict[str, int] = field(default_factory=dict)


def iter_raw_samples(shards: str, skips: SkipCounter | None = None) -> Iterator[RawSample]:
    """Every raw sample of a shard spec, shard by shard, in order."""
    skips = skips if skips is not None else SkipCounter()
    for shard in parse_shard_spec(shards).shards:
        yield from iter_tar_samples(shard.path, skips)


def rewrite_shards(shards: str, out_dir: str, transform: Callable[[RawSample], RawSample | None],
                   shard_size: int = 1000, overwrite: bool = False) -> RewriteReport:
    report, skips = RewriteReport(), SkipCounter()
    with ShardWriter(out_dir, shard_size, overwrite=overwrite) as writer:
        for raw in iter_raw_samples(shards, skips):
            report.read += 1
            kept = transform(raw)
            if kept is not None:
                writer.write(kept)
                report.written += 1
        report.spec = writer.close()
    report.skips = skips.to_dict()
    return report
