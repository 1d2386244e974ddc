"""Tiny hand-made shards for the data-layer tests (webdataset.TarWriter + PIL JPEGs)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import webdataset as wds
from PIL import Image


def jpeg_bytes(index: int, size: int = 8) -> bytes:
    color = ((index * 37) % 256, (index * 91) % 256, (index * 53) % 256)
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_shard(path: Path, samples: list[dict]) -> Path:
    """Write samples ({"__key__": str, ext: bytes|str|dict}) in the given order."""
    with wds.TarWriter(str(path)) as writer:
        for sample in samples:
            writer.write(sample)
    return path


def image_text_sample(key: str, index: int, label: int | None = None, image_size: int = 8) -> dict:
    meta = {"key": key, "width": image_size, "height": image_size}
    if label is not None:
        meta["label"] = label
    return {"__key__": key, "jpg": jpeg_bytes(index, image_size), "txt": f"caption number {index}",
            "json": meta}


def text_only_sample(key: str) -> dict:
    return {"__key__": key, "txt": key}


ShardMaker = Callable[..., list[Path]]


@pytest.fixture
def make_shards(tmp_path: Path) -> ShardMaker:
    """make_shards(name, sizes, kind="text"|"image", sizes_json=True, labels=None) -> shard paths.

    Shard i of directory `name` holds `sizes[i]` samples keyed `{name}{i:03d}{j:04d}`; "text"
    samples hold only a txt member (fast stream tests), "image" ones jpg + txt + json.
    """

    def make(name: str, sizes: list[int], kind: str = "text", sizes_json: bool = True,
             num_labels: int | None = None) -> list[Path]:
        directory = tmp_path / name
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for shard_index, count in enumerate(sizes):
            samples = []
            for j in range(count):
                key = f"{name}{shard_index:03d}{j:04d}"
                if kind == "text":
                    samples.append(text_only_sample(key))
                else:
                    label = None if num_labels is None else (shard_index * 1000 + j) % num_labels
                    samples.append(image_text_sample(key, shard_index * 1000 + j, label))
            paths.append(write_shard(directory / f"shard-{shard_index:06d}.tar", samples))
        if sizes_json:
            (directory / "sizes.json").write_text(json.dumps({p.name: n for p, n in zip(paths, sizes)}))
        return paths

    return make


@pytest.fixture
def tar_tools() -> SimpleNamespace:
    """Builders for hand-crafted (possibly broken) shards."""
    return SimpleNamespace(jpeg=jpeg_bytes, write=write_shard, image_text_sample=image_text_sample)
