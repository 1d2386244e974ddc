"""`ShardByteStream`: a sequential, bounded-memory, self-healing reader of one remote shard.

A transient fault (while opening, or a stream cut mid-body) is retried with backoff; after a
cut, the stream re-opens with a range read at the byte offset it had reached, so the tar
reader above never notices. Where the protocol cannot range-read (pipes, servers without
Range), a cut after the first byte surfaces as `ShardFault('truncated_tar')`, and a fault
that outlasts the retries as `unreadable_shard` (nothing read) or `truncated_tar`.

Memory: the prefetched bytes (`prefetch`), one raw read and a short tail kept so that the
tar reader may look back over its last record (`seek` backwards by at most `_TAIL_BYTES`).
"""

from __future__ import annotations

import time
from typing import Protocol

from mmpretrain.data.wds.remote.faults import ShardFault, TransientError, backoff_delay, describe, is_transient
from mmpretrain.data.wds.remote.locations import redact
from mmpretrain.data.wds.remote.openers import RawStream, open_raw
from mmpretrain.data.wds.remote.options import ShardReadOptions

_FETCH_BYTES = 256 * 1024
_TAIL_BYTES = 64 * 1024


class ByteSink(Protocol):
    """Receives every byte of the shard in order (the cache); `commit` only after the last one."""

    def write(self, data: bytes) -> None: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


class ShardByteStream:
    def __init__(self, location: str, options: ShardReadOptions, sink: ByteSink | None = None) -> None:
        self.location, self.options, self.sink = location, options, sink
        self.reopened = 0  # range re-opens after a cut (for tests and logs)
        self._raw: RawStream | None = None
        self._fetched = 0  # bytes received from the source
        self._position = 0  # bytes handed to the reader
        self._ahead = bytearray()
        self._tail = bytearray()
        self._eof = False
        self._failures = 0
        self._ranged = False
        self._deferred: ShardFault | None = None  # a fault met by `prefetch`, raised on the read that reaches it

    # ---- file-like interface used by tarfile -------------------------------------------------
    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read(_FETCH_BYTES), b""))
        try:
            while len(self._ahead) < n and not self._eof:
                self._fetch()
        except ShardFault as fault:
            # hand over the bytes before the fault first, as a cut local file would
            self._deferred = fault
        if self._deferred is not None and not self._ahead and n > 0:
            fault, self._deferred = self._deferred, None
            raise fault
        out = bytes(self._ahead[:n])
        del self._ahead[:n]
        self._position += len(out)
        self._tail += out
        if len(self._tail) > 2 * _TAIL_BYTES:
            del self._tail[:-_TAIL_BYTES]
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        target = offset if whence == 0 else self._position + offset
        if target >= self._position:
            self.read(target - self._position)
        else:
            back = self._position - target
            if back > len(self._tail):
                raise OSError(f"{redact(self.location)}: a stream cannot seek back {back} bytes")
            self._ahead[:0] = self._tail[-back:]
            del self._tail[-back:]
            self._position = target
        return self._position

    def prefetch(self, nbytes: int) -> None:
        """Read ahead until `nbytes` are buffered (runs in the read-ahead thread)."""
        try:
            while len(self._ahead) < nbytes and not self._eof:
                self._fetch()
        except ShardFault as fault:
            self._deferred = fault

    def close(self) -> None:
        if self.sink is not None and not self._eof:
            # tarfile stops at the end-of-archive marker; the padding after it completes the cache copy
            try:
                while not self._eof and self._fetched - self._position < 4 * _FETCH_BYTES:
                    self._fetch()
            except ShardFault:
                pass
            if not self._eof:
                self.sink.discard()
                self.sink = None
        self._close_raw()

    def __enter__(self) -> ShardByteStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- fetching with recovery --------------------------------------------------------------
    def _fetch(self) -> None:
        while True:
            try:
                if self._raw is None:
                    self._raw = open_raw(self.location, self._fetched, self.options)
                    self._ranged = self._raw.ranged
                data = self._raw.read(_FETCH_BYTES)
                if not data:
                    if self._raw.size is not None and self._fetched < self._raw.size:
                        raise TransientError(f"body ended at byte {self._fetched} of {self._raw.size}")
                    self._raw.finish(self.location, self._fetched)
                    self._finish()
                    return
                self._fetched += len(data)
                self._failures = 0
                self._ahead += data
                if self.sink is not None:
                    self.sink.write(data)
                return
            except ShardFault:
                self._fail()
                raise
            except Exception as exn:  # noqa: BLE001 - classified: retried or turned into a ShardFault
                resumable = self._fetched == 0 or self._ranged
                self._close_raw()
                if not resumable or not is_transient(exn) or self._failures >= self.options.retries:
                    self._fail()
                    reason = "unreadable_shard" if self._fetched == 0 else "truncated_tar"
                    raise ShardFault(reason, f"cannot read {redact(self.location)} at byte {self._fetched}"
                                     f"{f' after {self._failures + 1} tries' if self._failures else ''}: "
                                     f"{describe(exn)}") from exn
                time.sleep(backoff_delay(self._failures, self.options))
                self._failures += 1
                self.reopened += self._fetched > 0

    def _finish(self) -> None:
        self._eof = True
        self._close_raw()
        if self.sink is not None:
            self.sink.commit()
            self.sink = None

    def _fail(self) -> None:
        self._eof = True
        self._close_raw()
        if self.sink is not None:
            self.sink.discard()
            self.sink = None

    def _close_raw(self) -> None:
        if self._raw is not None:
            raw, self._raw = self._raw, None
            try:
                raw.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail again
                pass
