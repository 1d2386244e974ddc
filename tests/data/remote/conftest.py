"""Session-wide loopback servers over one set of img2dataset-style shards."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.remote_servers import I2D_SIZES, Faults, ShardHTTPServer, moto_s3, upload_directory, write_img2dataset_shards


@pytest.fixture(scope="session")
def remote_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("remote_root")
    write_img2dataset_shards(root / "i2d", I2D_SIZES)
    return root


@pytest.fixture(scope="session")
def http_server(remote_root):
    with ShardHTTPServer(remote_root) as server:
        yield server


@pytest.fixture
def http(http_server) -> ShardHTTPServer:
    """The session's HTTP server with faults reset for this test."""
    http_server.set_faults(Faults())
    yield http_server
    http_server.set_faults(Faults())


@pytest.fixture(scope="session")
def s3_endpoint(remote_root) -> str:
    pytest.importorskip("moto", reason="the S3 tests need moto[server] (requirements-dev.txt)")
    pytest.importorskip("s3fs", reason="the S3 tests need s3fs (pip install 'mmpretrain[s3]')")
    with moto_s3() as endpoint:
        upload_directory(remote_root / "i2d", "shards", "laion/i2d")
        yield endpoint
