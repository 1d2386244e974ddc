"""Small console fixes: video shards have pictures, exports honour the umask, the step-based
progress bar says "Epoch 0" with full metric names."""

from __future__ import annotations

import os
from types import SimpleNamespace

from mmpretrain.callbacks import StepProgressBar
from mmpretrain.commands.export import honour_umask
from mmpretrain.data.wds.writer import ShardWriter

from ..data_tools.test_inspect_shards import load_tool, run_report


def test_video_and_trajectory_samples_are_not_missing_an_image(tmp_path):
    folder = tmp_path / "shards"
    with ShardWriter(str(folder), 10) as writer:
        writer.write({"__key__": "clip", "mp4": b"\x00\x00\x00\x18ftypmp42", "txt": "a clip"})
        writer.write({"__key__": "window", "frames.npy": b"\x93NUMPY", "txt": "a window"})
        writer.write({"__key__": "caption_only", "txt": "nothing to see"})
    tool = load_tool()
    _, report = run_report(tool, str(folder), tmp_path)
    shard = report["shards"][0]
    assert shard["samples"] == 3 and shard["samples_missing_image"] == 1
    assert "| no image/video 1 |" in tool.format_line("total", report["total"])


def test_exported_weights_get_the_umask_mode(tmp_path):
    path = tmp_path / "open_clip_model.safetensors"
    path.write_bytes(b"x")
    os.chmod(path, 0o600)  # what safetensors leaves
    previous = os.umask(0o027)
    try:
        honour_umask(path)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o640


def test_step_based_progress_bar_description_and_names():
    bar = StepProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=-1)
    assert bar._get_train_description(0).strip() == "Epoch 0"
    bar._trainer = SimpleNamespace(max_epochs=3)
    assert bar._get_train_description(1).strip() == "Epoch 1/2"
