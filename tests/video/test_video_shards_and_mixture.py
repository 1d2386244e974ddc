"""make_video_shards.py on a folder of real videos, and joint image-text + video-text
batches through the data module's shard mixture."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import av
import numpy as np
import torch
import webdataset as wds
from PIL import Image

from mmpretrain.data.video.encode import encode_mp4
from mmpretrain.data.video.pyav_decoder import decode_frames
from mmpretrain.data.video_datamodule import VideoTextDataModule

REPO = Path(__file__).resolve().parents[2]


def ramp(num_frames: int) -> list[np.ndarray]:
    return [np.full((16, 16, 3), 10 * t, np.uint8) for t in range(num_frames)]


def write_mkv(path: Path, frames: list[np.ndarray]) -> None:
    with av.open(str(path), mode="w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_make_video_shards_stores_mp4_remuxes_mkv_and_counts_skips(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(encode_mp4(ramp(12)))
    (videos / "a.txt").write_text("a brightening clip")
    write_mkv(videos / "b.mkv", ramp(10))
    (videos / "b.txt").write_text("an mkv clip")
    (videos / "c.mp4").write_bytes(b"\x00" * 200)
    (videos / "c.txt").write_text("corrupt")
    (videos / "d.mp4").write_bytes(encode_mp4(ramp(4)))
    result = subprocess.run([sys.executable, str(REPO / "data_tools" / "make_video_shards.py"), str(videos),
                             "--out", str(tmp_path / "shards")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "missing caption 1, empty caption 0, unreadable video 1" in result.stdout
    with tarfile.open(tmp_path / "shards" / "shard-000000.tar") as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}
    assert sorted(members) == ["000000000.json", "000000000.mp4", "000000000.txt",
                               "000000001.json", "000000001.mp4", "000000001.txt"]
    assert members["000000000.mp4"] == (videos / "a.mp4").read_bytes()
    remuxed = decode_frames(members["000000001.mp4"], lambda n, fps: list(range(n)))
    assert remuxed.num_available == 10
    levels = remuxed.frames_T3HW.float().mean(dim=(1, 2, 3)) / 10
    assert torch.allclose(levels, torch.arange(10.0), atol=0.3)
    assert b'"source": "b.mkv"' in members["000000001.json"]


def write_tar(path: Path, samples: list[dict]) -> None:
    with wds.TarWriter(str(path)) as writer:
        for sample in samples:
            writer.write(sample)


def test_joint_video_and_image_batches_through_the_shard_mixture(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "images").mkdir()
    clip = encode_mp4(ramp(12))
    for shard in range(4):
        write_tar(tmp_path / "videos" / f"v-{shard:06d}.tar",
                  [{"__key__": f"video{shard}_{i}", "mp4": clip, "txt": "a clip"} for i in range(4)])
    png = io.BytesIO()
    Image.new("RGB", (20, 20), (0, 200, 0)).save(png, format="PNG")
    for shard in range(4):
        write_tar(tmp_path / "images" / f"i-{shard:06d}.tar",
                  [{"__key__": f"image{shard}_{i}", "png": png.getvalue(), "txt": "a green square"}
                   for i in range(4)])
    data = VideoTextDataModule(f"{tmp_path / 'videos'}::{tmp_path / 'images'}", train_weights=[0.5, 0.5],
                               batch_size=8, num_workers=0, shuffle_buffer=16, image_size=16,
                               context_length=16, num_frames=4, frame_stride=2)
    batches = [batch for batch, _ in zip(data.train_dataloader(), range(6))]
    keys = [key for batch in batches for key in batch["key"]]
    assert any(k.startswith("video") for k in keys) and any(k.startswith("image") for k in keys)
    for batch in batches:
        assert batch["video"].shape == (8, 4, 3, 16, 16)
        for key, video in zip(batch["key"], batch["video"]):
            static = torch.equal(video[0], video[-1])
            assert static == key.startswith("image"), key
