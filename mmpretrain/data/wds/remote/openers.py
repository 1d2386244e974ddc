"""Open the raw byte stream of a remote shard at a byte offset, one function per kind of location.

Each returns a `RawStream`: a file-like object with `read(n)`, the total size when the server
announces it, and whether a later call may start at a byte offset (range reads). HTTP uses the
standard library (no extra package, Range requests, `user:pass@` becomes basic auth);
other protocols go through their fsspec filesystem; `pipe:` runs the command in a shell.
"""

from __future__ import annotations

import base64
import subprocess
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import IO, Any

from mmpretrain.data.wds.remote.faults import ShardFault, TransientError
from mmpretrain.data.wds.remote.locations import HTTP_PROTOCOLS, protocol_of, redact
from mmpretrain.data.wds.remote.options import ShardReadOptions


@dataclass
class RawStream:
    file: Any
    size: int | None
    ranged: bool
    process: subprocess.Popen | None = None
    stderr: IO[bytes] | None = None

    def read(self, n: int) -> bytes:
        return self.file.read(n)

    def finish(self, location: str, position: int) -> None:
        """At end of data: a pipe command that exited non-zero is a fault."""
        if self.process is None:
            return
        code = self.process.wait()
        if code != 0:
            self.stderr.seek(0)
            message = self.stderr.read()[-300:].decode("utf-8", errors="replace").strip()
            reason = "unreadable_shard" if position == 0 else "truncated_tar"
            raise ShardFault(reason, f"{redact(location)} exited with status {code} after {position} bytes"
                             + (f": {redact(message)}" if message else ""))

    def close(self) -> None:
        try:
            self.file.close()
        finally:
            if self.process is not None:
                if self.process.poll() is None:
                    self.process.kill()
                self.process.wait()
                self.stderr.close()


def open_raw(location: str, offset: int, options: ShardReadOptions) -> RawStream:
    protocol = protocol_of(location)
    if protocol == "pipe":
        return _open_pipe(location[len("pipe:"):])
    if protocol in HTTP_PROTOCOLS:
        return _open_http(location, offset, options)
    return _open_fsspec(location, protocol, offset, options)


def _open_pipe(command: str) -> RawStream:
    stderr = tempfile.TemporaryFile()
    process = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE, stderr=stderr, bufsize=1 << 20)
    return RawStream(process.stdout, None, False, process, stderr)


def _open_http(url: str, offset: int, options: ShardReadOptions) -> RawStream:
    parts = urllib.parse.urlsplit(url)
    headers = {"User-Agent": "mmpretrain"}
    if parts.username is not None:
        credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        parts = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(urllib.parse.urlunsplit(parts), headers=headers)
    response = urllib.request.urlopen(request, timeout=options.timeout_s)
    if offset and response.status != 206:
        response.close()
        raise ShardFault("truncated_tar", f"{redact(url)} does not honour range requests; cannot resume at "
                         f"byte {offset}")
    length = response.headers.get("Content-Length")
    size = offset + int(length) if length is not None and length.isdigit() else None
    ranged = response.status == 206 or response.headers.get("Accept-Ranges", "").lower() == "bytes"
    return RawStream(response, size, ranged)


def _open_fsspec(location: str, protocol: str, offset: int, options: ShardReadOptions) -> RawStream:
    from mmpretrain.data.wds.remote.filesystems import filesystem_for

    fs = filesystem_for(protocol, options.timeout_s)
    file = fs.open(location, "rb", block_size=options.block_bytes, cache_type="readahead")
    try:
        size = file.size
        if offset:
            file.seek(offset)
    except Exception:
        file.close()
        raise
    if size is not None and offset > size:
        file.close()
        raise TransientError(f"{redact(location)} is shorter ({size} bytes) than when it was opened")
    return RawStream(file, size, True)
