"""Shard specifications: which tar files a stream reads, their sizes and mixture weights.

A spec is one string or a list of strings. Each string may hold several *sources* joined by
`::` (the open_clip convention); each source is a brace pattern
(`data/cc3m/shard-{000000..000331}.tar`), a single tar file, or a directory (all `*.tar` in
it, sorted). Sample counts come from `sizes.json` beside each shard (basename -> count).

Mixture weights (resampled mode only) give the expected fraction of *samples* drawn from
each source: a shard is drawn with probability `weight[source] / samples[source]` (when
some size is unknown, all shards are taken to be equally large). Without weights every shard
is equally likely, which pools the sources so that every sample is equally likely.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import braceexpand

from mmpretrain.data.wds.tar_reader import count_tar_samples

SIZES_FILENAME = "sizes.json"


@dataclass(frozen=True)
class Shard:
    path: str
    size: int | None
    source: int


@dataclass(frozen=True)
class ShardSpec:
    description: str
    shards: tuple[Shard, ...]
    num_sources: int
    weights: tuple[float, ...] | None = None

    @property
    def sizes_known(self) -> bool:
        return all(shard.size is not None for shard in self.shards)

    @property
    def total_size(self) -> int | None:
        return sum(shard.size for shard in self.shards) if self.sizes_known else None

    def draw_weights(self) -> list[float]:
        """Probability (unnormalised) of drawing each shard in resampled mode.

        A draw yields a whole shard, so drawing shards uniformly within a source already makes
        every sample of it equally likely; dividing by the source's sample count then makes
        the source's share of samples equal to its weight.
        """
        if self.weights is None:
            return [1.0] * len(self.shards)
        source_samples = [0] * self.num_sources
        for shard in self.shards:
            # without every size known, shards are taken to be equally large
            source_samples[shard.source] += shard.size if self.sizes_known else 1
        return [self.weights[s.source] / source_samples[s.source] if source_samples[s.source] else 0.0
                for s in self.shards]

    def with_counted_sizes(self) -> ShardSpec:
        """Fill unknown sizes by scanning each such tar's headers once."""
        if self.sizes_known:
            return self
        shards = tuple(
            shard if shard.size is not None else replace(shard, size=count_tar_samples(shard.path))
            for shard in self.shards
        )
        return replace(self, shards=shards)


def parse_shard_spec(spec: str | Sequence[str], weights: Sequence[float] | None = None) -> ShardSpec:
    """Expand `spec` into shards (in order of appearance) with sizes and optional source weights."""
    description = spec if isinstance(spec, str) else " :: ".join(str(s) for s in spec)
    parts = [spec] if isinstance(spec, str) else list(spec)
    sources = [s.strip() for part in parts for s in str(part).split("::") if s.strip()]
    if not sources:
        raise ValueError(f"shard spec {description!r} is empty; expected tar paths, a brace "
                         "pattern like 'dir/shard-{000000..000009}.tar', or a directory")
    sizes_by_dir: dict[str, dict[str, int]] = {}
    shards: list[Shard] = []
    for source_index, source in enumerate(sources):
        for path in _expand_source(source, description):
            directory = os.path.dirname(os.path.abspath(path))
            if directory not in sizes_by_dir:
                sizes_by_dir[directory] = _read_sizes_json(directory)
            size = sizes_by_dir[directory].get(os.path.basename(path))
            shards.append(Shard(path=path, size=size, source=source_index))
    checked_weights = _check_weights(weights, len(sources), description)
    return ShardSpec(description=description, shards=tuple(shards), num_sources=len(sources),
                     weights=checked_weights)


def _expand_source(source: str, description: str) -> list[str]:
    if "://" in source or source.startswith("pipe:"):
        raise ValueError(f"shard spec {description!r}: {source!r} is not a local path; only local "
                         "(or mounted) shard files are supported")
    if os.path.isdir(source):
        paths = sorted(os.path.join(source, name) for name in os.listdir(source) if name.endswith(".tar"))
        if not paths:
            raise ValueError(f"shard spec {description!r}: directory {source!r} holds no *.tar shards")
        return paths
    paths = list(braceexpand.braceexpand(source))
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(repr(p) for p in missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise ValueError(f"shard spec {description!r}: {len(missing)} of {len(paths)} shard files "
                         f"do not exist: {shown}")
    return paths


def _read_sizes_json(directory: str) -> dict[str, int]:
    sizes_path = os.path.join(directory, SIZES_FILENAME)
    if not os.path.isfile(sizes_path):
        return {}
    try:
        with open(sizes_path, encoding="utf-8") as f:
            sizes = json.load(f)
    except (OSError, json.JSONDecodeError) as exn:
        raise ValueError(f"{sizes_path}: cannot read shard sizes ({exn}); expected a JSON object "
                         '{"shard-000000.tar": count, ...}') from exn
    if not isinstance(sizes, dict) or not all(isinstance(v, int) and v >= 0 for v in sizes.values()):
        raise ValueError(f"{sizes_path}: expected a JSON object mapping shard basenames to "
                         "non-negative integer sample counts")
    return sizes


def _check_weights(weights: Sequence[float] | None, num_sources: int,
                   description: str) -> tuple[float, ...] | None:
    if weights is None:
        return None
    values = tuple(float(w) for w in weights)
    if len(values) != num_sources:
        raise ValueError(f"shard spec {description!r} has {num_sources} sources but "
                         f"{len(values)} mixture weights were given; expected one weight per source")
    if any(not math.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
        raise ValueError(f"shard spec {description!r}: mixture weights {list(values)} must be "
                         "finite, non-negative and not all zero")
    return values
