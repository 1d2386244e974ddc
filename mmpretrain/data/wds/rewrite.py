"""Stream every raw sample of a shard set and write a transformed/filtered copy (+ sizes.json).

Used by the offline curation tools: the transform returns the (possibly edited) raw sample to
keep it or None to drop it. Unreadable tar members are skipped and counted by the reader.
Input shards may be URLs or `pipe:` commands; `out_dir` may be an object-store prefix
(`s3://bucket/prefix`): shards are then written to a local temporary directory and uploaded,
each whole, with sizes.json last.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmpretrain.data.wds.remote.locations import is_remote
from mmpretrain.data.wds.remote.sizes import SIZES_FILENAME, fetch_optional
from mmpretrain.data.wds.remote.upload import existing_shards, upload_shard_dir
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
    if not is_remote(str(out_dir)):
        return _rewrite_into(shards, str(out_dir), transform, shard_size, overwrite)
    prefix = str(out_dir).rstrip("/")
    existing = existing_shards(prefix, r"^shard-\d{6}\.tar$")
    if existing and not overwrite:
        raise FileExistsError(f"{prefix} already holds {len(existing)} 'shard-*.tar' shards (e.g. {existing[0]}); "
                              "pass --overwrite to replace them")
    with tempfile.TemporaryDirectory(prefix="mmpretrain-upload-") as staging:
        previous_sizes = fetch_optional(f"{prefix}/{SIZES_FILENAME}", remote=True)
        if previous_sizes is not None:  # ShardWriter keeps the entries of other prefixes
            (Path(staging) / SIZES_FILENAME).write_bytes(previous_sizes)
        report = _rewrite_into(shards, staging, transform, shard_size, overwrite=True)
        upload_shard_dir(staging, prefix)
    report.spec = report.spec.replace(staging, prefix)
    return report


def _rewrite_into(shards: str, out_dir: str, transform: Callable[[RawSample], RawSample | None],
                  shard_size: int, overwrite: bool) -> RewriteReport:
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
