"""Shard specifications: which tar files a stream reads, their sizes and mixture weights.

A spec is one string or a list of strings. Each string may hold several *sources* joined by
`::` (the open_clip convention); each source is a brace pattern
(`data/cc3m/shard-{000000..000331}.tar`), a single tar file, or a directory (all `*.tar` in
it, sorted). Sources may also be URLs (`s3://`, `gs://`, `https://`, any installed fsspec
protocol; a bucket prefix lists its `*.tar`) or `pipe:COMMAND` (see `wds/remote`). Sample
counts come from `sizes.json` beside the shards (basename -> count) or img2dataset's
per-shard `*_stats.json`; remote shards are never scanned for them.

Mixture weights (resampled mode only) give the expected fraction of *samples* drawn from
each source: a shard is drawn with probability `weight[source] / samples[source]` (when
some size is unknown, all shards are taken to be equally large). Without weights every shard
is equally likely, which pools the sources so that every sample is equally likely.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import braceexpand

from mmpretrain.data.wds.remote.locations import basename_of, expand_remote_source, is_remote, parent_of
from mmpretrain.data.wds.remote.sizes import SIZES_FILENAME, no_sizes_message, shard_sizes
from mmpretrain.data.wds.tar_reader import count_tar_samples

__all__ = ["SIZES_FILENAME", "Shard", "ShardSpec", "parse_shard_spec"]


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
        """Fill unknown sizes by scanning each such local tar's headers once (remote shards
        are not downloaded for a count: their sizes must come from a sizes file)."""
        if self.sizes_known:
            return self
        remote_unknown = [s.path for s in self.shards if s.size is None and is_remote(s.path)]
        if remote_unknown:
            raise ValueError(no_sizes_message(self.description, remote_unknown))
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
    located = [(source_index, path) for source_index, source in enumerate(sources)
               for path in (expand_remote_source(source, description) if is_remote(source)
                            else _expand_source(source, description))]
    names_by_dir: dict[tuple[str, bool], list[str]] = {}
    for _, path in located:
        names_by_dir.setdefault(_directory(path), []).append(basename_of(path))
    piped = {_directory(path) for _, path in located if path.startswith("pipe:")}
    sizes_by_dir = {where: _sizes_of(*where, names, lenient=where in piped) for where, names in names_by_dir.items()}
    shards = [Shard(path=path, size=sizes_by_dir[_directory(path)].get(basename_of(path)), source=source_index)
              for source_index, path in located]
    checked_weights = _check_weights(weights, len(sources), description)
    return ShardSpec(description=description, shards=tuple(shards), num_sources=len(sources),
                     weights=checked_weights)


def _expand_source(source: str, description: str) -> list[str]:
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


def _directory(path: str) -> tuple[str, bool]:
    """(directory holding the shard's size files, whether it is remote)."""
    if not is_remote(path):
        return os.path.dirname(os.path.abspath(path)), False
    parent = parent_of(path)
    if path.startswith("pipe:") and not is_remote(parent):
        return os.path.abspath(parent or "."), False
    return parent, True


def _sizes_of(directory: str, remote: bool, names: list[str], lenient: bool) -> dict[str, int]:
    """`lenient` for the URL guessed from a pipe command: its client may not be installed."""
    try:
        return shard_sizes(directory, names, remote)
    except (ImportError, ValueError):
        if lenient:
            return {}
        raise


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
