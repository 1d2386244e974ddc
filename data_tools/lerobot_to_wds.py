"""Convert a LeRobot dataset directory (v3.0 or v2.1 layout) into trajectory-window shards.

    python data_tools/lerobot_to_wds.py --root path/to/lerobot_dataset --out data/robot/lerobot \
        --video-key observation.images.top --image-size 48 --window 8

Layouts (read from `meta/info.json`: `codebase_version`, `fps`, `features`, `data_path`, `video_path`):
- v3.0: many episodes per parquet/mp4 file; `meta/episodes/*/*.parquet` gives each episode's
  data and video file indices and `videos/{key}/from_timestamp`; frame i of an episode is at
  video time from_timestamp + i / fps.
- v2.1: one parquet and one mp4 per episode (`episode_chunk = episode_index // chunks_size`);
  frame i is at i / fps.
Per-frame parquet columns: `action`, optional `observation.state`, `episode_index`, `frame_index`.
Actions become continuous axes for the factored heads: mu-law quantized (VPT) with `max_value`
the dataset's largest |action| per dimension (or `--axis-max`), or with `--axis-quantization
uniform` OpenVLA-style tokens: per dimension the 1st..99th percentile range cut into
`--axis-bins` (e.g. 256) equal bins. Every window is labelled `label_source: human`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from mmpretrain.data.envs import resize_frame  # noqa: E402
from mmpretrain.data.sources.action_space import ActionAxis, ActionSpace, uniform_axes_from_data  # noqa: E402
from mmpretrain.data.sources.trajectory_episodes import episode_window_samples  # noqa: E402
from mmpretrain.data.wds.writer import ShardWriter  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="LeRobot dataset directory (holds meta/info.json)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--video-key", help="video feature to use (default: the first video feature)")
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--axis-max", type=float, help="clip range of every action axis (default: data max)")
    parser.add_argument("--axis-bins", type=int, default=11, help="bins per axis (odd for mu_law; OpenVLA uses 256)")
    parser.add_argument("--axis-quantization", choices=("mu_law", "uniform"), default="mu_law")
    parser.add_argument("--percentiles", type=float, nargs=2, default=(1.0, 99.0), metavar=("LOW", "HIGH"),
                        help="uniform quantization: bounds as percentiles of each action dimension")
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--overwrite", action="store_true")
    return parser


def read_info(root: Path) -> dict:
    path = root / "meta" / "info.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exn:
        raise SystemExit(f"{path}: cannot read LeRobot info.json: {exn}") from exn
    for key in ("codebase_version", "fps", "features", "data_path", "video_path"):
        if key not in info:
            raise SystemExit(f"{path}: missing key {key!r}")
    if not str(info["codebase_version"]).startswith(("v2.1", "v3")):
        raise SystemExit(f"{path}: codebase_version {info['codebase_version']!r} is not v2.1 or v3.x")
    return info


def decode_video(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 [N, H, W, 3], presentation times in seconds [N])."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * stream.time_base))
    if not frames:
        raise SystemExit(f"{path}: no video frames")
    return np.stack(frames), np.asarray(times)


def frames_at(video: tuple[np.ndarray, np.ndarray], timestamps: np.ndarray, path: Path, fps: float) -> np.ndarray:
    frames, times = video
    index = np.abs(times[None, :] - timestamps[:, None]).argmin(axis=1)
    error = np.abs(times[index] - timestamps).max()
    if error > 0.5 / fps:
        raise SystemExit(f"{path}: no video frame within half a frame of t={timestamps[np.abs(times[index] - timestamps).argmax()]:.3f}s")
    return frames[index]


def episodes_v3(root: Path, info: dict, video_key: str) -> list[dict]:
    rows = pq.read_table(sorted((root / "meta" / "episodes").rglob("*.parquet"))).to_pylist()
    return [{"episode": int(r["episode_index"]),
             "data": root / info["data_path"].format(chunk_index=r["data/chunk_index"], file_index=r["data/file_index"]),
             "video": root / info["video_path"].format(video_key=video_key,
                                                       chunk_index=r[f"videos/{video_key}/chunk_index"],
                                                       file_index=r[f"videos/{video_key}/file_index"]),
             "from_timestamp": float(r[f"videos/{video_key}/from_timestamp"])} for r in rows]


def episodes_v21(root: Path, info: dict, video_key: str) -> list[dict]:
    lines = (root / "meta" / "episodes.jsonl").read_text().splitlines()
    chunks = int(info.get("chunks_size", 1000))
    episodes = []
    for line in filter(None, lines):
        index = int(json.loads(line)["episode_index"])
        fmt = {"episode_chunk": index // chunks, "episode_index": index, "video_key": video_key}
        episodes.append({"episode": index, "data": root / info["data_path"].format(**fmt),
                         "video": root / info["video_path"].format(**fmt), "from_timestamp": 0.0})
    return episodes


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = Path(args.root)
    info = read_info(root)
    fps = float(info["fps"])
    videos = [k for k, f in info["features"].items() if f.get("dtype") == "video"]
    video_key = args.video_key or (videos[0] if videos else None)
    if video_key not in videos:
        raise SystemExit(f"{root}: video feature {video_key!r} not among {videos}")
    episodes = (episodes_v3 if str(info["codebase_version"]).startswith("v3") else episodes_v21)(root, info, video_key)
    tables, per_episode = {}, []
    for episode in episodes:
        if episode["data"] not in tables:
            tables[episode["data"]] = pq.read_table(episode["data"])
        table = tables[episode["data"]]
        rows = table.filter(pc.equal(table["episode_index"], episode["episode"])).sort_by("frame_index")
        actions = np.asarray(rows["action"].to_pylist(), dtype=np.float32)
        states = (np.asarray(rows["observation.state"].to_pylist(), dtype=np.float32)
                  if "observation.state" in rows.column_names else None)
        per_episode.append((episode, actions, states))
    all_actions = np.concatenate([a for _, a, _ in per_episode])
    names = info["features"]["action"].get("names") or [f"axis{i}" for i in range(all_actions.shape[1])]
    names = [str(n).replace(".", "_") for n in names]
    if args.axis_quantization == "uniform":
        space = ActionSpace(axes=uniform_axes_from_data(names, torch.from_numpy(all_actions), args.axis_bins,
                                                        (args.percentiles[0], args.percentiles[1])))
    else:
        limits = np.full(all_actions.shape[1], args.axis_max) if args.axis_max else np.abs(all_actions).max(0)
        space = ActionSpace(axes=[ActionAxis(n, float(max(m, 1e-6)), 10.0, args.axis_bins)
                                  for n, m in zip(names, limits)])
    decoded: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
    with ShardWriter(args.out, args.shard_size, overwrite=args.overwrite) as writer:
        for episode, actions, states in per_episode:
            if episode["video"] not in decoded:
                decoded = {episode["video"]: decode_video(episode["video"])}
            times = episode["from_timestamp"] + np.arange(len(actions)) / fps
            frames = frames_at(decoded[episode["video"]], times, episode["video"], fps)
            frames = np.stack([resize_frame(f, args.image_size) for f in frames])
            meta = {"source": "lerobot", "codebase_version": info["codebase_version"], "video_key": video_key}
            for sample in episode_window_samples(episode["episode"], frames, actions, space, args.window, fps,
                                                 meta, states):
                writer.write(sample)
        spec = writer.close()
    print(f"wrote {writer.num_samples} windows from {len(per_episode)} episodes: {spec}")
    print(json.dumps({"action_space": space.to_json()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
