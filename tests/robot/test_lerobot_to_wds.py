"""LeRobot v3.0 / v2.1 datasets (built here with pyarrow + real PyAV mp4s) -> trajectory shards."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mmpretrain.data.sources.action_space import ActionSpace
from mmpretrain.data.sources.trajectory import TrajectoryDecoder
from mmpretrain.data.wds.shard_spec import parse_shard_spec
from mmpretrain.data.wds.skips import SkipCounter
from mmpretrain.data.wds.tar_reader import iter_tar_samples

av = pytest.importorskip("av")
REPO_ROOT = Path(__file__).resolve().parents[2]
FPS, SIZE, KEY = 10, 32, "observation.images.top"
LENGTHS = {0: 9, 1: 12}  # frames per episode


def _grey(level: int) -> np.ndarray:
    return np.full((SIZE, SIZE, 3), level, dtype=np.uint8)


def _level(episode: int, frame: int) -> int:
    return 20 + 100 * episode + 8 * frame  # distinct per frame, so alignment is checkable after mp4 coding


def _write_mp4(path: Path, frames: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _rows(episode: int, start_index: int) -> list[dict]:
    return [{"action": [float(frame), -0.5 * frame], "observation.state": [float(episode)],
             "timestamp": frame / FPS, "episode_index": episode, "frame_index": frame, "index": start_index + frame}
            for frame in range(LENGTHS[episode])]


def _info(version: str, data_path: str, video_path: str) -> dict:
    return {"codebase_version": version, "fps": FPS, "chunks_size": 1000, "data_path": data_path,
            "video_path": video_path,
            "features": {KEY: {"dtype": "video", "shape": [SIZE, SIZE, 3]},
                         "observation.state": {"dtype": "float32", "shape": [1]},
                         "action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]}}}


def make_v3(root: Path) -> Path:
    """Both episodes in one parquet and one mp4; episode 1 starts 1 s into the video."""
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    info = _info("v3.0", "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
                 "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4")
    (root / "meta" / "info.json").write_text(json.dumps(info))
    frames = [_grey(_level(0, i)) for i in range(LENGTHS[0])] + [_grey(0)]  # a gap frame: episode 1 at t=1.0
    frames += [_grey(_level(1, i)) for i in range(LENGTHS[1])]
    _write_mp4(root / f"videos/{KEY}/chunk-000/file-000.mp4", frames)
    (root / "data/chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(_rows(1, 9) + _rows(0, 0)), root / "data/chunk-000/file-000.parquet")
    episodes = [{"episode_index": e, "length": LENGTHS[e], "data/chunk_index": 0, "data/file_index": 0,
                 f"videos/{KEY}/chunk_index": 0, f"videos/{KEY}/file_index": 0,
                 f"videos/{KEY}/from_timestamp": start} for e, start in ((0, 0.0), (1, 1.0))]
    pq.write_table(pa.Table.from_pylist(episodes), root / "meta/episodes/chunk-000/file-000.parquet")
    return root


def make_v21(root: Path) -> Path:
    (root / "meta").mkdir(parents=True)
    info = _info("v2.1", "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
                 "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4")
    (root / "meta" / "info.json").write_text(json.dumps(info))
    (root / "meta" / "episodes.jsonl").write_text("".join(json.dumps({"episode_index": e, "length": n}) + "\n"
                                                          for e, n in LENGTHS.items()))
    (root / "data/chunk-000").mkdir(parents=True)
    for episode in LENGTHS:
        pq.write_table(pa.Table.from_pylist(_rows(episode, 0)), root / f"data/chunk-000/episode_{episode:06d}.parquet")
        _write_mp4(root / f"videos/chunk-000/{KEY}/episode_{episode:06d}.mp4",
                   [_grey(_level(episode, i)) for i in range(LENGTHS[episode])])
    return root


@pytest.mark.parametrize("make", [make_v3, make_v21])
def test_lerobot_conversion_aligns_frames_actions_and_states(make, tmp_path):
    root = make(tmp_path / "dataset")
    out = tmp_path / "shards"
    result = subprocess.run([sys.executable, str(REPO_ROOT / "data_tools" / "lerobot_to_wds.py"), "--root", str(root),
                             "--out", str(out), "--image-size", str(SIZE), "--window", "4"],
                            check=True, capture_output=True, text=True)
    space = ActionSpace.from_json(json.loads(result.stdout.strip().splitlines()[-1])["action_space"])
    assert [a.name for a in space.axes] == ["x", "y"] and space.axes[0].max_value == 11.0
    samples = [raw for shard in parse_shard_spec(str(out)).shards for raw in iter_tar_samples(shard.path, SkipCounter())]
    decoder = TrajectoryDecoder(space)
    windows = {(d["json"]["episode"], d["json"]["frame_start"]): d for d in map(decoder, samples)}
    # 9 frames -> windows at 0, 4; 12 frames -> windows at 0, 4, 8 (a short tail is dropped)
    assert sorted(windows) == [(0, 0), (0, 4), (1, 0), (1, 4), (1, 8)]
    for (episode, start), sample in windows.items():
        frames = [start + t for t in range(4)]
        assert sample["actions"][:, 0].tolist() == frames
        levels = sample["frames"].float().mean(dim=(1, 2, 3)).tolist()
        assert levels == pytest.approx([_level(episode, f) for f in frames], abs=3)
    raw = next(r for r in samples if json.loads(r["json"])["episode"] == 1)
    assert np.load(io.BytesIO(raw["states.npy"])).ravel().tolist() == [1.0] * 4


def test_lerobot_conversion_with_openvla_uniform_tokens(tmp_path):
    root = make_v21(tmp_path / "dataset")
    out = tmp_path / "shards"
    result = subprocess.run([sys.executable, str(REPO_ROOT / "data_tools" / "lerobot_to_wds.py"), "--root", str(root),
                             "--out", str(out), "--image-size", str(SIZE), "--window", "4", "--axis-quantization",
                             "uniform", "--axis-bins", "256", "--percentiles", "0", "100"],
                            check=True, capture_output=True, text=True)
    space = ActionSpace.from_json(json.loads(result.stdout.strip().splitlines()[-1])["action_space"])
    x_axis = space.axes[0]
    assert (x_axis.quantization, x_axis.bins, x_axis.low, x_axis.high) == ("uniform", 256, 0.0, 11.0)
    samples = [raw for shard in parse_shard_spec(str(out)).shards for raw in iter_tar_samples(shard.path, SkipCounter())]
    decoded = [TrajectoryDecoder(space)(raw) for raw in samples]  # the shards' json carries the same space
    assert len(decoded) == 5 and all(d is not None for d in decoded)
    frames = torch.cat([d["actions"][:, 0] for d in decoded])
    tokens = space.axis_bins(torch.cat([d["actions"] for d in decoded]))[:, 0]
    assert (space.axis_values(space.axis_bins(torch.cat([d["actions"] for d in decoded])))[:, 0] - frames).abs().max() \
        <= 11.0 / 256 / 2 + 1e-6
    assert tokens.min() == 0 and tokens.max() == 255
