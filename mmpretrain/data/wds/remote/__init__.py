"""Reading shards from object stores, HTTP and pipes (see docs/remote_shards.md)."""

from mmpretrain.data.wds.remote.options import DEFAULT_READ_OPTIONS, ShardReadOptions

__all__ = ["DEFAULT_READ_OPTIONS", "ShardReadOptions"]
