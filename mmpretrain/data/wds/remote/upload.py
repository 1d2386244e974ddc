"""Writing shard sets to object stores: data tools write locally, then upload.

Each object of an object store appears whole or not at all, so uploading a finished shard is
atomic; `sizes.json` goes last, so a reader that finds it finds every shard it lists.
HTTP has no standard write; `pipe:` is read-only.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

from mmpretrain.data.wds.remote.filesystems import filesystem_for
from mmpretrain.data.wds.remote.locations import HTTP_PROTOCOLS, protocol_of, redact
from mmpretrain.data.wds.remote.sizes import SIZES_FILENAME


def writable_filesystem(url: str):
    protocol = protocol_of(url)
    if protocol in HTTP_PROTOCOLS or protocol == "pipe":
        raise ValueError(f"cannot write shards to {redact(url)}: {protocol} is read-only here; use a local "
                         "directory or an object store URL (s3://, gs://, ...)")
    return filesystem_for(protocol)


def existing_shards(url: str, pattern: str) -> list[str]:
    """Objects under the prefix `url` whose names match `pattern` (a regex on the basename)."""
    fs = writable_filesystem(url)
    try:
        names = [posixpath.basename(p) for p in fs.ls(url.rstrip("/"), detail=False)]
    except FileNotFoundError:
        return []
    return sorted(n for n in names if re.match(pattern, n))


def upload_file(local: str | Path, url: str) -> None:
    writable_filesystem(url).put_file(str(local), url)


def upload_shard_dir(local_dir: str | Path, url: str) -> list[str]:
    """Upload every file of `local_dir` to the prefix `url`, sizes.json last; returns the URLs."""
    prefix = url.rstrip("/")
    names = sorted(os.listdir(local_dir), key=lambda name: (name == SIZES_FILENAME, name))
    uploaded = []
    for name in names:
        if name.endswith(".tmp"):
            continue
        target = f"{prefix}/{name}"
        upload_file(Path(local_dir) / name, target)
        uploaded.append(target)
    writable_filesystem(url).invalidate_cache()  # later listings in this process must see them
    return uploaded
