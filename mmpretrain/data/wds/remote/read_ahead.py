"""Opening shards, and opening the next one ahead of need.

`open_shard` gives a file-like object for any location: a local file, a cached copy of a
remote shard, or a `ShardByteStream` (feeding the cache when one is configured).
`ShardOpener` is held by one DataLoader worker: told which shard comes next (`hint`), it opens
that stream and prefetches its first bytes in a background thread while the current shard
decodes, so network latency overlaps compute. The same shard drawn twice in a row (resampled
mode) is simply opened again. Local files need no read-ahead.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

from mmpretrain.data.wds.remote.byte_stream import ShardByteStream
from mmpretrain.data.wds.remote.cache import CacheWriter, cached_copy
from mmpretrain.data.wds.remote.locations import is_remote
from mmpretrain.data.wds.remote.options import DEFAULT_READ_OPTIONS, ShardReadOptions


def open_shard(location: str, options: ShardReadOptions = DEFAULT_READ_OPTIONS) -> IO[bytes] | ShardByteStream:
    if not is_remote(location):
        return open(location, "rb")
    if options.cache_dir is not None:
        cached = cached_copy(options.cache_dir, location)
        if cached is not None:
            return open(cached, "rb")
        return ShardByteStream(location, options, CacheWriter(options.cache_dir, location, options.cache_max_bytes))
    return ShardByteStream(location, options)


def _open_and_prefetch(location: str, options: ShardReadOptions):
    stream = open_shard(location, options)
    if isinstance(stream, ShardByteStream):
        stream.prefetch(options.prefetch_bytes)
    return stream


class ShardOpener:
    """Opens shards for one reader, with the hinted next ones opened ahead in a thread."""

    def __init__(self, options: ShardReadOptions = DEFAULT_READ_OPTIONS, depth: int = 2) -> None:
        self.options = options
        self.depth = depth  # streams held open ahead: the one about to be read and its successor
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: dict[str, Future] = {}

    def __call__(self, location: str):
        future = self._ahead.pop(location, None)
        if future is not None:
            return future.result()
        return open_shard(location, self.options)

    def hint(self, location: str | None) -> None:
        """`location` will be opened soon; start on it now when it is remote."""
        if (location is None or not self.options.open_ahead or not is_remote(location)
                or location in self._ahead):
            return
        while len(self._ahead) >= self.depth:
            self._drop(next(iter(self._ahead)))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="shard-read-ahead")
        self._ahead[location] = self._pool.submit(_open_and_prefetch, location, self.options)

    def close(self) -> None:
        for location in list(self._ahead):
            self._drop(location)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _drop(self, location: str) -> None:
        future = self._ahead.pop(location)
        try:
            future.result().close()
        except Exception:  # noqa: BLE001 - an unused read-ahead may have failed; nothing to report
            pass
