"""Shared fixtures: synthetic shards generated once per test session with the data tools."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Lightning gives its logger a StreamHandler bound to the sys.stderr of the moment it is first
# imported; importing it here binds the session's stream, not one test's capsys stream that is
# closed after that test (later tests would print '--- Logging error ---' tracebacks).
import lightning.pytorch  # noqa: E402,F401

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_synthetic(kind: str, out: Path, num_samples: int, shard_size: int, seed: int,
                   *extra: str) -> Path:
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "data_tools" / "make_synthetic.py"), kind, "--out", str(out),
         "--num-samples", str(num_samples), "--shard-size", str(shard_size), "--seed", str(seed),
         *extra],
        check=True, capture_output=True, text=True,
    )
    return out


@pytest.fixture(scope="session")
def image_text_shards(tmp_path_factory) -> dict[str, Path]:
    """Small synthetic image-text train/val sets (64 px): {'train': DIR, 'val': DIR}."""
    root = tmp_path_factory.mktemp("synthetic_image_text")
    return {
        "train": make_synthetic("image-text", root / "train", 512, 64, 0),
        "val": make_synthetic("image-text", root / "val", 128, 64, 1),
    }


@pytest.fixture(scope="session")
def trajectory_shards(tmp_path_factory) -> dict[str, Path]:
    """Small synthetic cursor-paint trajectory sets (24 px, windows of 8): {'train', 'val'}."""
    root = tmp_path_factory.mktemp("synthetic_trajectory")
    return {
        "train": make_synthetic("trajectory", root / "train", 32, 16, 0),
        "val": make_synthetic("trajectory", root / "val", 16, 8, 1),
    }


def _recorded_env_shards(tmp_path_factory, env: str, name: str) -> dict[str, Path]:
    """Tiny recordings of a gymnasium env with its scripted policy (48 px, windows of 8)."""
    root = tmp_path_factory.mktemp(name)
    shards = {}
    for split, seed in (("train", 0), ("val", 1)):
        subprocess.run([sys.executable, str(REPO_ROOT / "data_tools" / "record_env.py"), "--env", env,
                        "--out", str(root / split), "--episodes", "2", "--max-steps", "32", "--image-size", "48",
                        "--window", "8", "--shard-size", "4", "--seed", str(seed)],
                       check=True, capture_output=True, text=True)
        shards[split] = root / split
    return shards


@pytest.fixture(scope="session")
def breakout_shards(tmp_path_factory) -> dict[str, Path]:
    """Atari Breakout (needs gymnasium + ale-py)."""
    pytest.importorskip("ale_py")
    return _recorded_env_shards(tmp_path_factory, "ALE/Breakout-v5", "breakout")


@pytest.fixture(scope="session")
def pendulum_shards(tmp_path_factory) -> dict[str, Path]:
    """gymnasium Pendulum-v1 (a continuous torque axis; pygame renders the frames)."""
    pytest.importorskip("pygame")
    return _recorded_env_shards(tmp_path_factory, "Pendulum-v1", "pendulum")


@pytest.fixture(scope="session")
def video_text_shards(tmp_path_factory) -> dict[str, Path]:
    """Small synthetic video-text train/val sets (32 px, 16-frame clips): {'train': DIR, 'val': DIR}."""
    root = tmp_path_factory.mktemp("synthetic_video_text")
    return {
        "train": make_synthetic("video-text", root / "train", 64, 32, 0),
        "val": make_synthetic("video-text", root / "val", 32, 16, 1),
    }


@pytest.fixture(scope="session")
def continual_stream_shards(tmp_path_factory) -> dict[str, Path]:
    """Tiny synthetic continual stream (32 px, 5 tasks): {'train': pool, 'val': held-out,
    'root': the stream root holding task{k}/train and task{k}/eval}."""
    root = tmp_path_factory.mktemp("synthetic_continual")
    make_synthetic("continual", root, 64, 32, 0, "--pool-samples", "64", "--eval-samples", "32")
    return {"train": root / "pool", "val": root / "heldout", "root": root}


@pytest.fixture(scope="session")
def interleaved_shards(tmp_path_factory) -> dict[str, Path]:
    """Small synthetic interleaved document sets (32 px scenes): {'train': DIR, 'val': DIR}."""
    root = tmp_path_factory.mktemp("synthetic_interleaved")
    return {
        "train": make_synthetic("interleaved", root / "train", 96, 32, 0),
        "val": make_synthetic("interleaved", root / "val", 32, 16, 1),
    }
