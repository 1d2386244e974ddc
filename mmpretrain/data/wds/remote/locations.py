"""Shard locations that are not local paths: fsspec URLs (`s3://`, `gs://`, `http(s)://`, ...)
and webdataset's `pipe:COMMAND`. Parsing, credential redaction and listing a prefix."""

from __future__ import annotations

import posixpath
import re

import braceexpand

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_QUERY = re.compile(r"(?P<url>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?]+)\?\S*")
HTTP_PROTOCOLS = ("http", "https")


def is_remote(location: str) -> bool:
    """A URL (any `scheme://`) or a `pipe:` command, as opposed to a local path."""
    return location.startswith("pipe:") or "://" in location


def protocol_of(location: str) -> str:
    """'pipe', 'http', 's3', 'gs', ... ('gcs://' is read as 'gs')."""
    if location.startswith("pipe:"):
        return "pipe"
    protocol = location.split("://", 1)[0].lower()
    return "gs" if protocol == "gcs" else protocol


def redact(text: str) -> str:
    """`text` with URL user-info and query strings (signed URLs, tokens) replaced by '***'."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}***@", text)
    return _QUERY.sub(lambda m: f"{m['url']}?***", text)


def basename_of(location: str) -> str:
    """The shard's file name: for `pipe:` the last path-like word of the command that ends in .tar."""
    if location.startswith("pipe:"):
        words = [w for w in location[5:].split() if ".tar" in w]
        location = words[-1] if words else location
    return posixpath.basename(location.split("?", 1)[0].rstrip("/"))


def parent_of(location: str) -> str:
    """The "directory" URL holding a shard URL (for sizes.json and *_stats.json beside it)."""
    if location.startswith("pipe:"):
        words = [w for w in location[5:].split() if "://" in w]
        if not words:
            return ""
        location = words[-1]
    return location.split("?", 1)[0].rsplit("/", 1)[0]


def expand_remote_source(source: str, description: str) -> list[str]:
    """Shards of one remote source: a brace pattern, one `.tar` URL, or a prefix/"directory"
    URL whose `*.tar` objects are listed (not over HTTP, which has no listing)."""
    if source.startswith("pipe:") or "{" in source or source.split("?", 1)[0].endswith(".tar"):
        return list(braceexpand.braceexpand(source))
    protocol = protocol_of(source)
    if protocol in HTTP_PROTOCOLS:
        raise ValueError(f"shard spec {redact(description)!r}: {redact(source)!r} is neither a .tar URL nor a "
                         "brace pattern, and HTTP cannot list a directory; name the shards with braces, "
                         "e.g. 'https://host/data/{00000..00099}.tar'")
    from mmpretrain.data.wds.remote.filesystems import filesystem_for

    fs = filesystem_for(protocol)
    prefix = source.rstrip("/")
    try:
        found = sorted(fs.glob(prefix + "/*.tar"))
    except Exception as exn:  # noqa: BLE001 - any client error becomes one line naming the URL
        raise ValueError(f"shard spec {redact(description)!r}: cannot list {redact(source)!r} "
                         f"({type(exn).__name__}: {redact(str(exn))})") from exn
    if not found:
        raise ValueError(f"shard spec {redact(description)!r}: {redact(source)!r} holds no *.tar shards")
    return [f"{protocol}://{path.split('://', 1)[-1]}" for path in found]
