"""How shards are read: retries, timeouts, read-ahead and the optional local cache."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShardReadOptions:
    """`retries`: extra attempts after a transient fault (connection reset, timeout, HTTP
    429/5xx, S3 SlowDown) of one request, counted afresh after every byte of progress.
    `timeout_s`: per-request connect/read timeout. `backoff_s`/`max_backoff_s`: the
    exponential backoff before retry k is `min(max, backoff * 2**k)` times a jitter in [0.5, 1].
    `cache_dir`: keep fully read remote shards there for later epochs (None = stream only),
    capped at `cache_max_bytes` (least recently used shards are evicted first).
    `open_ahead`: each worker opens the next remote shard's stream in a background thread
    and prefetches `prefetch_bytes` of it while the current shard decodes. `block_bytes`: the
    size of one ranged request of fsspec protocols (S3, GCS), which bounds their read buffer."""

    retries: int = 5
    timeout_s: float = 60.0
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    cache_dir: str | None = None
    cache_max_bytes: int = 100 * 2**30
    open_ahead: bool = True
    prefetch_bytes: int = 4 * 2**20
    block_bytes: int = 8 * 2**20

    def __post_init__(self) -> None:
        if self.retries < 0 or self.timeout_s <= 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError(f"read_options: retries >= 0, timeout_s > 0 and backoffs >= 0 expected, got {self}")
        if self.cache_max_bytes < 0 or self.prefetch_bytes < 0 or self.block_bytes < 1:
            raise ValueError(f"read_options: cache_max_bytes, prefetch_bytes >= 0 and block_bytes >= 1 expected, "
                             f"got {self}")


DEFAULT_READ_OPTIONS = ShardReadOptions()
