"""Samples per shard without scanning the shards: `sizes.json` beside them (basename -> count,
fetched once per directory), else img2dataset's per-shard `{name}_stats.json` (`successes`).

Works for local directories and remote "directories" (URL prefixes) alike; a remote file
that does not exist simply means the size is unknown.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from mmpretrain.data.wds.remote.byte_stream import ShardByteStream
from mmpretrain.data.wds.remote.faults import ShardFault, http_status
from mmpretrain.data.wds.remote.locations import redact
from mmpretrain.data.wds.remote.options import DEFAULT_READ_OPTIONS, ShardReadOptions

SIZES_FILENAME = "sizes.json"
STATS_SUFFIX = "_stats.json"
_FETCH_THREADS = 16


def fetch_optional(location: str, remote: bool, options: ShardReadOptions = DEFAULT_READ_OPTIONS) -> bytes | None:
    """The bytes of a small file, or None when it does not exist."""
    if not remote:
        try:
            with open(location, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
    try:
        with ShardByteStream(location, options) as stream:
            return stream.read()
    except ShardFault as fault:
        cause = fault.__cause__
        if isinstance(cause, ImportError):
            raise ImportError(str(cause)) from None
        if isinstance(cause, FileNotFoundError) or http_status(cause) in (403, 404):
            return None  # S3 answers 403 for a missing key when listing is not allowed
        raise ValueError(str(fault)) from None


def join(directory: str, name: str, remote: bool) -> str:
    return posixpath.join(directory, name) if remote else os.path.join(directory, name)


def shard_sizes(directory: str, names: Sequence[str], remote: bool) -> dict[str, int]:
    """Known sizes of the shards `names` (basenames) in `directory`; unknown ones are left out."""
    sizes = _sizes_json(join(directory, SIZES_FILENAME, remote), remote)
    missing = [name for name in names if name not in sizes and name.endswith(".tar")]
    if not missing:
        return sizes
    if remote:
        with ThreadPoolExecutor(min(_FETCH_THREADS, len(missing))) as pool:
            found = pool.map(lambda name: _stats_successes(directory, name, remote), missing)
            sizes.update({name: n for name, n in zip(missing, found) if n is not None})
    else:
        sizes.update({name: n for name in missing if (n := _stats_successes(directory, name, remote)) is not None})
    return sizes


def _sizes_json(location: str, remote: bool) -> dict[str, int]:
    data = fetch_optional(location, remote)
    if data is None:
        return {}
    try:
        sizes = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exn:
        raise ValueError(f"{redact(location)}: cannot read shard sizes ({exn}); expected a JSON object "
                         '{"shard-000000.tar": count, ...}') from exn
    if not isinstance(sizes, dict) or not all(isinstance(v, int) and v >= 0 for v in sizes.values()):
        raise ValueError(f"{redact(location)}: expected a JSON object mapping shard basenames to "
                         "non-negative integer sample counts")
    return dict(sizes)


def _stats_successes(directory: str, name: str, remote: bool) -> int | None:
    location = join(directory, name[: -len(".tar")] + STATS_SUFFIX, remote)
    data = fetch_optional(location, remote)
    if data is None:
        return None
    try:
        successes = json.loads(data).get("successes")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return successes if isinstance(successes, int) and successes >= 0 else None


def no_sizes_message(description: str, missing: Sequence[str]) -> str:
    shown = ", ".join(redact(m) for m in missing[:2]) + (" ..." if len(missing) > 2 else "")
    return (f"shard spec {redact(description)!r}: exact mode needs each shard's sample count, and {len(missing)} "
            f"remote shards have none ({shown}); put a sizes.json ({{\"name.tar\": count}}) or img2dataset "
            "*_stats.json files beside them (`python data_tools/inspect_shards.py SPEC --write-sizes` writes "
            "one, also to a URL), or use mode=resampled with samples_per_epoch")
