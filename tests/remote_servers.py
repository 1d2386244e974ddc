"""Real servers on loopback for remote-shard tests and benchmarks, and img2dataset-style shards.

`ShardHTTPServer`: a threaded `http.server` serving a directory with Range support and fault
injection (reset the first k shard requests, answer 503 at random, cut each shard's first
response after n bytes, or ignore Range). Faults hit `.tar` requests only, so sizes and
stats files always arrive and counted losses are exact.
`moto_s3`: moto's standalone S3 server (a real S3 API over HTTP) with the standard AWS
environment pointing at it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import webdataset as wds


# the tests' shard set: one empty shard, as img2dataset leaves when every download of a shard failed
I2D_SIZES = [12, 0, 10, 9, 11]


@dataclass
class Faults:
    reset_first: int = 0  # close the connection without an answer for the first k shard requests
    error_rate: float = 0.0  # answer 503 with this probability
    cut_after: int | None = None  # send only this many body bytes of each shard's first response
    ranges: bool = True  # honour Range requests
    seed: int = 0
    requests: int = 0
    cut_paths: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


class _Handler(SimpleHTTPRequestHandler):
    faults: Faults

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet test output
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        faults = self.faults
        shard = path.suffix == ".tar"
        with faults.lock:
            faults.requests += shard
            reset = shard and faults.requests <= faults.reset_first
            unavailable = shard and not reset and faults.rng.random() < faults.error_rate
            cut = shard and faults.cut_after is not None and self.path not in faults.cut_paths
            if cut:
                faults.cut_paths.add(self.path)
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            self.close_connection = True
            return
        if unavailable:
            self.send_error(503)
            return
        data = path.read_bytes()
        start = 0
        range_header = self.headers.get("Range")
        if range_header and faults.ranges:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        if faults.ranges:
            self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if cut:
            self.wfile.write(body[: faults.cut_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


class ShardHTTPServer:
    def __init__(self, root: Path, faults: Faults | None = None, port: int = 0) -> None:
        self.faults = faults or Faults()
        handler = type("Handler", (_Handler,), {"faults": self.faults})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), partial(handler, directory=str(root)))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self.server.RequestHandlerClass.func.faults = faults

    def __enter__(self) -> ShardHTTPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """Run moto's S3 server on loopback; yields its endpoint URL with the AWS env set to it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    previous = {k: os.environ.get(k) for k in [*S3_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL=endpoint)
    try:
        yield endpoint
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


def upload_directory(root: Path, bucket: str, prefix: str) -> None:
    import boto3

    client = boto3.client("s3")
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")


def write_img2dataset_shards(out_dir: Path, shard_sizes: list[int], image_size: int = 32,
                             failures_per_shard: int = 1) -> list[Path]:
    """Shards laid out as img2dataset writes them: `{shard:05d}.tar` with keys `{shard:05d}{j:04d}`
    (jpg, txt, json), a `{shard:05d}_stats.json` each (with `successes`), no sizes.json. A size
    of 0 gives an empty shard (img2dataset writes one when every download of it failed)."""
    from mmpretrain.data.synthetic.image_text import ImageTextOptions, class_names, make_sample

    out_dir.mkdir(parents=True, exist_ok=True)
    options = ImageTextOptions(num_samples=max(sum(shard_sizes), 1), shard_size=max(max(shard_sizes), 1),
                               image_size=image_size)
    classnames = class_names()
    paths = []
    for shard, size in enumerate(shard_sizes):
        path = out_dir / f"{shard:05d}.tar"
        with wds.TarWriter(str(path)) as writer:
            for j in range(size):
                sample = make_sample(shard * 10_000 + j, options, classnames)
                key = f"{shard:05d}{j:04d}"
                meta = {**sample["json"], "key": key, "status": "success"}
                writer.write({"__key__": key, "jpg": sample["jpg"], "txt": sample["txt"], "json": meta})
        stats = {"count": size + failures_per_shard, "successes": size, "failed_to_download": failures_per_shard,
                 "failed_to_resize": 0, "status_dict": {"success": size}}
        (out_dir / f"{shard:05d}_stats.json").write_text(json.dumps(stats))
        paths.append(path)
    return paths


def main() -> None:
    """Serve DIR over loopback HTTP and S3 (bucket `shards`, prefix = DIR's name) until killed:
    `python tests/remote_servers.py DIR [--img2dataset 256,256,0,256]` (writes the shards first)."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--img2dataset", help="comma-separated shard sizes to write into ROOT/i2d first")
    parser.add_argument("--port", type=int, default=0, help="HTTP port (0 = any free one)")
    args = parser.parse_args()
    if args.img2dataset:
        write_img2dataset_shards(args.root / "i2d", [int(n) for n in args.img2dataset.split(",")], image_size=64)
    with ShardHTTPServer(args.root, port=args.port) as http, moto_s3() as endpoint:
        upload_directory(args.root, "shards", args.root.name)
        print(f"http: {http.url}/  (serving {args.root})", flush=True)
        print(f"s3: s3://shards/{args.root.name}/  with AWS_ENDPOINT_URL={endpoint} "
              + " ".join(f"{k}={v}" for k, v in S3_ENV.items()), flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
