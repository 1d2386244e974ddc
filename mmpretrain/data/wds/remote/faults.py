"""Which read errors are worth retrying, and the exponential backoff + jitter between tries.

Transient: connection reset/refused/aborted, timeouts, a response cut short, HTTP 429 and
5xx, S3 SlowDown/throttling. Permanent: 403/404 and other 4xx, missing objects, denied
access; those fail at once with a message naming the URL (credentials redacted).
"""

from __future__ import annotations

import http.client
import random
import socket
import urllib.error

from mmpretrain.data.wds.remote.locations import redact
from mmpretrain.data.wds.remote.options import ShardReadOptions

_TRANSIENT_WORDS = ("slowdown", "slow down", "throttl", "timeout", "timed out", "reset", "temporar",
                    "unavailable", "internalerror", "serviceunavailable", "requesttimeout", "too many requests",
                    "connection", "broken pipe", "503", "500", "502", "504", "429")
_PERMANENT_EXCEPTIONS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
# private generator: jitter must not move the global `random` that seeds augmentations
_JITTER = random.Random()


class ShardFault(Exception):
    """A shard read that failed for good; `reason` is the skip counter it goes to
    (`unreadable_shard` before any byte was read, `truncated_tar` after)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TransientError(Exception):
    """Raised by our own readers for a retryable condition (e.g. a body shorter than announced)."""


def http_status(exn: BaseException) -> int | None:
    if isinstance(exn, urllib.error.HTTPError):
        return exn.code
    status = getattr(exn, "status", None) or getattr(exn, "code", None)
    return status if isinstance(status, int) else None


def is_transient(exn: BaseException) -> bool:
    if isinstance(exn, TransientError):
        return True
    status = http_status(exn)
    if status is not None:
        return status == 429 or status >= 500
    if isinstance(exn, _PERMANENT_EXCEPTIONS):
        return False
    if isinstance(exn, (ConnectionError, TimeoutError, socket.timeout, http.client.IncompleteRead,
                        http.client.RemoteDisconnected, EOFError)):
        return True
    if isinstance(exn, urllib.error.URLError):
        return not isinstance(exn.reason, str) or any(w in exn.reason.lower() for w in _TRANSIENT_WORDS)
    text = f"{type(exn).__name__} {exn}".lower()
    return any(word in text for word in _TRANSIENT_WORDS)


def describe(exn: BaseException) -> str:
    status = http_status(exn)
    detail = f"HTTP {status}" if status is not None else f"{type(exn).__name__}: {exn}"
    return redact(detail)


def backoff_delay(attempt: int, options: ShardReadOptions) -> float:
    return min(options.max_backoff_s, options.backoff_s * 2**attempt) * _JITTER.uniform(0.5, 1.0)
