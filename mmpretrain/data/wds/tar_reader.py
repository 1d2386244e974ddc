"""Tolerant streaming of raw samples from one WebDataset tar shard.

Members are grouped into samples by key (img2dataset convention: the member name up to the
first dot of its basename; `webdataset.tariterators.base_plus_ext`). Damage never raises:
it is counted in a `SkipCounter` under one of these reasons and reading goes on.

- `unreadable_shard`: the file cannot be opened (remote: a fault that outlasted the retries,
  or a 403/404, before any byte arrived).
- `corrupt_tar`: the file is not a tar archive at all.
- `truncated_tar`: the archive is cut short (remote: the stream broke for good mid-shard);
  samples known to be complete are kept, the one being assembled at the cut is dropped (it
  may be missing members).
- `empty_member`: a zero-byte member; it is left out of its sample.
- `duplicate_member`: the same key and extension twice in a row; the first copy is kept.
- `duplicate_key`: a key that already formed an earlier sample of this shard; dropped.
- `unrecognized_member`: a member name without an extension.
"""

from __future__ import annotations

import re
import tarfile
import warnings
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

from webdataset.tariterators import base_plus_ext

from mmpretrain.data.wds.remote.faults import ShardFault
from mmpretrain.data.wds.remote.read_ahead import open_shard
from mmpretrain.data.wds.skips import SkipCounter

# what a damaged archive raises from the tarfile/gzip layers while streaming
_TAR_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)

# webdataset's own metadata members (`__meta__`, `__dir__/...`) are not samples
_META_MEMBER = r"__[^/]*__($|/)"


def member_key(name: str) -> tuple[str, str] | None:
    """(sample key, lower-case extension) of a tar member, or None for a name without extension."""
    prefix, suffix = base_plus_ext(name)
    if prefix is None:
        return None
    return prefix, suffix.lower()


class _TruncatedArchive(Exception):
    def __init__(self, member_name: str | None = None, cause: BaseException | None = None) -> None:
        super().__init__(member_name)
        self.member_name = member_name  # the member whose data was cut, when known
        self.fault = cause if isinstance(cause, ShardFault) else None


def _fault(skips: SkipCounter, fault: ShardFault) -> None:
    skips.add(fault.reason)
    warnings.warn(f"{fault}; counted as {fault.reason}", stacklevel=3)


def iter_tar_samples(path: str, skips: SkipCounter,
                     open_fn: Callable[[str], IO[bytes]] = open_shard) -> Iterator[dict[str, Any]]:
    """Yield `{"__key__", "__url__", "__index__", ext: bytes, ...}` for each sample in the shard.

    `path` is a local path, a URL or `pipe:COMMAND` (`open_fn` opens it; see `wds/remote`).
    `__index__` is the position of the sample among those yielded from this shard.
    """
    try:
        fileobj = open_fn(path)
    except OSError:
        skips.add("unreadable_shard")
        return
    except ShardFault as fault:
        _fault(skips, fault)
        return
    with fileobj:
        try:
            archive = tarfile.open(fileobj=fileobj, mode="r|*")
        except ShardFault as fault:
            _fault(skips, fault)
            return
        except _TAR_ERRORS:
            skips.add("corrupt_tar")
            return
        yield from _group_members(path, _members(archive, fileobj), skips)


def _members(archive: tarfile.TarFile, fileobj) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of regular members; raises _TruncatedArchive when the archive is cut short."""
    try:
        for info in archive:
            archive.members = []  # stream mode would otherwise keep every TarInfo
            if not info.isreg() or re.match(_META_MEMBER, info.name):
                continue
            try:
                data = archive.extractfile(info).read()
            except (*_TAR_ERRORS, ShardFault) as exn:
                raise _TruncatedArchive(info.name, exn) from exn
            yield info.name, data
    except (*_TAR_ERRORS, ShardFault) as exn:
        raise _TruncatedArchive(None, exn) from exn
    # tarfile ends silently at a header cut in half; an intact archive has only zero blocks
    # (or nothing) after its last member, a cut one has the partial header's bytes
    if getattr(archive.fileobj, "comptype", None) == "tar":
        try:
            fileobj.seek(archive.offset)
            tail = fileobj.read(2 * tarfile.BLOCKSIZE)
        except (OSError, ShardFault) as exn:
            raise _TruncatedArchive(None, exn) from exn
        if tail.strip(b"\0"):
            raise _TruncatedArchive


def _payload(sample: dict[str, Any] | None) -> bool:
    return sample is not None and any(not name.startswith("__") for name in sample)


def _group_members(path: str, members: Iterator[tuple[str, bytes]], skips: SkipCounter) -> Iterator[dict[str, Any]]:
    seen_keys: set[str] = set()
    current: dict[str, Any] | None = None
    dropping_key: str | None = None
    index = 0
    try:
        for name, data in members:
            parsed = member_key(name)
            if parsed is None:
                skips.add("unrecognized_member")
                continue
            key, ext = parsed
            if key == dropping_key:
                continue
            if current is None or key != current["__key__"]:
                if _payload(current):
                    yield current
                    index += 1
                current = None
                if key in seen_keys:
                    skips.add("duplicate_key")
                    dropping_key = key
                    continue
                seen_keys.add(key)
                dropping_key = None
                current = {"__key__": key, "__url__": path, "__index__": index}
            if not data:
                skips.add("empty_member")
            elif ext in current:
                skips.add("duplicate_member")
            else:
                current[ext] = data
    except _TruncatedArchive as cut:
        skips.add("truncated_tar")
        if cut.fault is not None:
            warnings.warn(f"{cut.fault}; counted as truncated_tar (complete samples kept)", stacklevel=2)
        # a cut inside the next sample's member proves the current sample was complete
        cut_key = member_key(cut.member_name) if cut.member_name else None
        if cut_key is not None and current is not None and cut_key[0] != current["__key__"] and _payload(current):
            yield current
        return
    if _payload(current):
        yield current


def count_tar_samples(path: str) -> int:
    """Samples in a shard from its headers alone (seeks past member data).

    Exact for intact shards; a damaged one may count one sample more than `iter_tar_samples`
    yields (the one cut short), a non-tar counts 0. Never raises on bad data.
    """
    keys: set[str] = set()
    try:
        with tarfile.open(path, mode="r:*") as archive:
            for info in archive:
                if not info.isreg() or info.size == 0 or re.match(_META_MEMBER, info.name):
                    continue
                parsed = member_key(info.name)
                if parsed is not None:
                    keys.add(parsed[0])
    except _TAR_ERRORS:
        pass
    return len(keys)
