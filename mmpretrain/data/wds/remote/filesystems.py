"""One fsspec filesystem per protocol, imported lazily; a missing client names its extra.

Credentials and endpoints come from each client's own standard configuration (for S3:
`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, instance
roles; for GCS: `GOOGLE_APPLICATION_CREDENTIALS` or gcloud's default login), never from
mmpretrain's config, so they are never printed or logged with it.
"""

from __future__ import annotations

import os
from typing import Any

from mmpretrain.extras import MissingExtra

# protocol -> (client package, mmpretrain extra that installs it)
# (http/https need none: they are read with the standard library, see openers.py)
_CLIENTS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"), "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs")}
_FILESYSTEMS: dict[tuple[int, str, float], Any] = {}


def missing_client(protocol: str) -> Exception:
    package, extra = _CLIENTS.get(protocol, (None, None))
    if extra is None:
        return ValueError(f"no fsspec filesystem for '{protocol}://' is installed")
    return MissingExtra(package, extra, feature=f"reading '{protocol}://' shards")


def filesystem_for(protocol: str, timeout_s: float | None = None):
    """The process's fsspec filesystem for `protocol` (cached per process: workers fork)."""
    key = (os.getpid(), protocol, timeout_s or 0.0)
    if key not in _FILESYSTEMS:
        try:
            import fsspec

            _FILESYSTEMS[key] = fsspec.filesystem(protocol, **_client_options(protocol, timeout_s))
        except ImportError as exn:
            raise missing_client(protocol) from exn
        except ValueError as exn:
            if "Protocol not known" in str(exn):
                raise missing_client(protocol) from None
            raise
    return _FILESYSTEMS[key]


def _client_options(protocol: str, timeout_s: float | None) -> dict[str, Any]:
    # fsspec's instance cache would hand a forked worker its parent's event loop
    options: dict[str, Any] = {"skip_instance_cache": True}
    if protocol in ("s3", "s3a") and timeout_s:
        options["config_kwargs"] = {"connect_timeout": timeout_s, "read_timeout": timeout_s,
                                    "retries": {"max_attempts": 1}}
    return options
