"""Optional local cache of remote shards: fully read shards are kept for later epochs.

A shard is written under a temporary name while it streams and renamed into place only
after its last byte arrived (and, for `pipe:`, the command exited 0), so a killed run never
leaves a half shard that a later run would trust. The cache is capped in bytes; the least
recently used shards (by mtime, refreshed on every hit) are evicted first.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from pathlib import Path

from mmpretrain.data.wds.remote.locations import basename_of

_STALE_PARTIAL_S = 24 * 3600


def cache_path(cache_dir: str, location: str) -> Path:
    digest = hashlib.sha256(location.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{digest}-{basename_of(location)}"


def cached_copy(cache_dir: str, location: str) -> Path | None:
    """The cached file of `location`, marked as just used, or None."""
    path = cache_path(cache_dir, location)
    try:
        os.utime(path)
    except OSError:
        return None
    return path


class CacheWriter:
    """A `ByteSink` writing one shard into the cache atomically."""

    def __init__(self, cache_dir: str, location: str, max_bytes: int) -> None:
        self.final = cache_path(cache_dir, location)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        fd, tmp = tempfile.mkstemp(dir=self.final.parent, prefix=".partial-", suffix=".tmp")
        self.tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")
        self._written = 0

    def write(self, data: bytes) -> None:
        if self._file is None:
            return
        self._written += len(data)
        if self._written > self.max_bytes:
            self.discard()  # larger than the whole cache: stream it without keeping it
            return
        self._file.write(data)

    def commit(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        os.replace(self.tmp, self.final)
        evict_to(self.final.parent, self.max_bytes, keep=self.final)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


def evict_to(cache_dir: Path, max_bytes: int, keep: Path | None = None) -> None:
    """Delete least recently used complete shards until the cache holds at most `max_bytes`."""
    entries = []
    for path in cache_dir.iterdir():
        if path.name.startswith(".partial-"):
            with contextlib.suppress(FileNotFoundError):  # left by a killed run: never trusted, so drop it
                if time.time() - path.stat().st_mtime > _STALE_PARTIAL_S:
                    path.unlink()
            continue
        with contextlib.suppress(FileNotFoundError):  # another worker may evict concurrently
            stat = path.stat()
            entries.append((stat.st_mtime, path, stat.st_size))
    total = sum(size for _, _, size in entries)
    for _, path, size in sorted(entries, key=lambda e: e[0]):
        if total <= max_bytes:
            break
        if path == keep:
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        total -= size
