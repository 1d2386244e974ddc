"""Deterministic, atomic WebDataset shard writer.

`ShardWriter` writes samples (dicts with a `__key__` and one entry per member extension) into
`{prefix}-000000.tar`, `{prefix}-000001.tar`, ... rolling over every `shard_size` samples.
Tar headers carry a fixed mtime/uid/gid/owner so that the same samples always give
byte-identical shards, and each shard is written under a temporary name and renamed when
complete, so a reader never sees a half-written `.tar`. Closing writes `sizes.json`
(shard basename -> sample count, the open_clip / img2dataset convention) and returns the
brace spec `DIR/{prefix}-{000000..00000N}.tar` covering every shard written.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from pathlib import Path
from types import TracebackType
from typing import Any

SIZES_FILENAME = "sizes.json"
_TMP_SUFFIX = ".tmp"


def shard_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:06d}.tar"


def encode_member(key: str, ext: str, value: Any) -> bytes:
    """Bytes stored for one tar member: bytes as is, str as UTF-8, dict/list as JSON."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False).encode("utf-8")
    raise TypeError(
        f"sample {key!r}: member {ext!r} has type {type(value).__name__}; "
        "expected bytes, str, dict or list"
    )


def write_json_atomic(path: Path, payload: Any) -> None:
    tmp_path = path.with_name(path.name + _TMP_SUFFIX)
    tmp_path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp_path, path)


class ShardWriter:
    """Context manager writing WebDataset samples into fixed-size tar shards.

    Refuses to write into a directory that already holds `{prefix}-NNNNNN.tar` shards unless
    `overwrite=True` (then those shards are deleted first): a stale shard left over from a
    larger earlier run would otherwise be silently mixed into the new dataset.
    """

    def __init__(
        self,
        out_dir: str,
        shard_size: int,
        prefix: str = "shard",
        overwrite: bool = False,
        mtime: int = 0,
    ) -> None:
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        if not prefix or "/" in prefix or "." in prefix:
            raise ValueError(f"prefix must be a non-empty name without '/' or '.', got {prefix!r}")
        self.out_dir = Path(out_dir)
        self.shard_size = shard_size
        self.prefix = prefix
        self.mtime = mtime
        self.sizes: dict[str, int] = {}
        self.spec: str | None = None
        self._shard_pattern = re.compile(rf"^{re.escape(prefix)}-\d{{6}}\.tar$")
        self._tar: tarfile.TarFile | None = None
        self._tmp_path: Path | None = None
        self._samples_in_shard = 0
        self._keys_in_shard: set[str] = set()
        self._closed = False
        self._prepare_out_dir(overwrite)

    def _prepare_out_dir(self, overwrite: bool) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        existing = sorted(p for p in self.out_dir.iterdir() if self._shard_pattern.match(p.name))
        if existing and not overwrite:
            raise FileExistsError(
                f"{self.out_dir} already holds {len(existing)} '{self.prefix}-*.tar' shards "
                f"(e.g. {existing[0].name}); pass overwrite=True (--overwrite) to replace them"
            )
        for path in existing:
            path.unlink()

    @property
    def num_samples(self) -> int:
        return sum(self.sizes.values()) + self._samples_in_shard

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, sample: dict[str, Any]) -> None:
        """Append one sample; keys starting with `__` other than `__key__` are ignored."""
        if self._closed:
            raise RuntimeError("ShardWriter is closed")
        key = sample.get("__key__")
        if not isinstance(key, str) or not key or "." in key:
            raise ValueError(f"sample __key__ must be a non-empty str without '.', got {key!r}")
        # Encode everything before touching the tar so a bad member never leaves half a sample.
        members = {
            ext: encode_member(key, ext, value)
            for ext, value in sorted(sample.items()) if not ext.startswith("__")
        }
        if not members:
            raise ValueError(f"sample {key!r} has no members besides __key__")
        if "" in members:
            raise ValueError(f"sample {key!r} has an empty member extension")
        if key in self._keys_in_shard:
            raise ValueError(f"duplicate sample key {key!r} in {self._current_name()}")
        if self._tar is None:
            self._open_next_shard()
        for ext, payload in members.items():
            self._add_member(f"{key}.{ext}", payload)
        self._keys_in_shard.add(key)
        self._samples_in_shard += 1
        if self._samples_in_shard == self.shard_size:
            self._finish_shard()

    def close(self) -> str:
        """Finish the open shard, write sizes.json and return the brace spec ("" if empty)."""
        if self._closed:
            return self.spec or ""
        if self._tar is not None:
            self._finish_shard()
        self._closed = True
        self._write_sizes()
        last = len(self.sizes) - 1
        if last < 0:
            self.spec = ""
        else:
            self.spec = f"{self.out_dir}/{self.prefix}-{{{0:06d}..{last:06d}}}.tar"
        return self.spec

    def abort(self) -> None:
        """Drop the half-written shard; completed shards stay, sizes.json is not written."""
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        if self._tmp_path is not None:
            self._tmp_path.unlink(missing_ok=True)
            self._tmp_path = None
        self._closed = True

    def _current_name(self) -> str:
        return shard_name(self.prefix, len(self.sizes))

    def _open_next_shard(self) -> None:
        self._tmp_path = self.out_dir / (self._current_name() + _TMP_SUFFIX)
        self._tar = tarfile.open(self._tmp_path, mode="w", format=tarfile.GNU_FORMAT)
        self._samples_in_shard = 0
        self._keys_in_shard = set()

    def _add_member(self, name: str, payload: bytes) -> None:
        assert self._tar is not None
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        info.mtime = self.mtime
        info.mode = 0o444
        info.uid = info.gid = 0
        info.uname = info.gname = "bigdata"
        self._tar.addfile(info, io.BytesIO(payload))

    def _finish_shard(self) -> None:
        assert self._tar is not None and self._tmp_path is not None
        self._tar.close()
        name = self._current_name()
        os.replace(self._tmp_path, self.out_dir / name)
        self.sizes[name] = self._samples_in_shard
        self._tar = None
        self._tmp_path = None
        self._samples_in_shard = 0
        self._keys_in_shard = set()

    def _write_sizes(self) -> None:
        # Other prefixes may share the directory (e.g. train/val); keep their entries.
        sizes_path = self.out_dir / SIZES_FILENAME
        merged: dict[str, int] = {}
        if sizes_path.exists():
            try:
                previous = json.loads(sizes_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                previous = None
            if isinstance(previous, dict):
                merged = {k: v for k, v in previous.items() if not self._shard_pattern.match(k)}
        merged.update(self.sizes)
        write_json_atomic(sizes_path, merged)
