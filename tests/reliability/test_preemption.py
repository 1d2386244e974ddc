"""Preemption: SIGTERM saves `last.ckpt` and exits 0 (real subprocess through `python -m mmpretrain`);
kill -9 at random points of training and in the middle of a checkpoint write never leaves an
unloadable `last.ckpt`, and resuming continues from it."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from mmpretrain.callbacks.sample_keys import read_sample_keys
from mmpretrain.plugins import atomic_checkpoint_io, load_checkpoint_file

REPO_ROOT = Path(__file__).resolve().parents[2]
EVERY_STEP = Path(__file__).with_name("checkpoint_every_step.yaml")


def wait_for_steps(keys_file: Path, steps: int, process, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if keys_file.exists() and len(read_sample_keys(keys_file)) >= steps:
            return
        if (process.poll() if hasattr(process, "poll") else process.exitcode) is not None:
            raise AssertionError("training process ended before it was signalled")
        time.sleep(0.05)
    raise AssertionError(f"no {steps} training steps within {timeout}s")


def test_sigterm_saves_last_checkpoint_and_exits_cleanly(tiny, image_text_shards, tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mmpretrain", "fit", "-c", tiny.config, "--trainer.max_steps=100000",
         f"--data.init_args.train_shards={image_text_shards['train']}", f"--trainer.default_root_dir={run_dir}"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_steps(run_dir / "sample_keys" / "rank0.txt", 3, process)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, output[-3000:]
    assert "SIGTERM: saved" in output
    checkpoint = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    steps = read_sample_keys(run_dir / "sample_keys" / "rank0.txt")
    assert checkpoint["global_step"] == steps[-1][0] == len(steps) >= 3  # nothing trained is lost
    # the checkpoint records the data layout a resume must match
    data_state = checkpoint["WebDataModule"]["train_stream_per_rank"]
    config = data_state[0]["config"]
    assert len(data_state) == config["world_size"] == 1
    assert config["num_workers"] == 0 and config["seed"] == 0 and config["mode"] == "exact"
    assert len(config["shards_sha256"]) == 64


def _train_forever(run_dir: Path, shards: Path, slow_write_marker: Path | None) -> None:
    from tests.reliability.conftest import tiny_cli  # noqa: PLC0415 - runs in the forked child
    torch.set_num_threads(1)
    if slow_write_marker is not None:
        real_save = torch.save

        def save_then_stall(obj, f, *args, **kwargs):
            real_save(obj, f, *args, **kwargs)
            f.flush()
            if Path(f.name).name.startswith(".last.ckpt"):
                slow_write_marker.write_text(str(f.name))  # half-way: temp file written, not renamed
                time.sleep(600)
        atomic_checkpoint_io.torch.save = save_then_stall
    ckpt = "last" if (run_dir / "checkpoints" / "last.ckpt").exists() else None
    tiny_cli(run_dir, shards, "-c", str(EVERY_STEP), "--trainer.max_steps=100000", ckpt_path=ckpt)
    os._exit(0)


def test_kill9_anywhere_leaves_a_loadable_last_checkpoint(tiny, image_text_shards, tmp_path):
    run_dir, shards = tmp_path / "run", image_text_shards["train"]
    fork = multiprocessing.get_context("fork")
    rng = random.Random(0)
    last_step = 0
    keys_file = run_dir / "sample_keys" / "rank0.txt"
    for attempt in range(3):
        marker = tmp_path / f"stalled-{attempt}" if attempt == 2 else None
        child = fork.Process(target=_train_forever, args=(run_dir, shards, marker))
        child.start()
        if marker is not None:  # the child stalls half-way through its first checkpoint write
            deadline = time.monotonic() + 120
            while not marker.exists() and time.monotonic() < deadline and child.exitcode is None:
                time.sleep(0.02)
            assert marker.exists(), "the checkpoint write never started"
        else:
            already = len(read_sample_keys(keys_file)) if keys_file.exists() else 0
            wait_for_steps(keys_file, already + 2, child)
            time.sleep(rng.uniform(0.0, 1.0))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        checkpoint = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
        assert checkpoint["global_step"] >= max(last_step, 1)
        last_step = checkpoint["global_step"]
        if marker is not None:  # killed mid-write: the half-written temp file is not last.ckpt
            assert Path(marker.read_text()).exists() and Path(marker.read_text()).name.startswith(".last.ckpt")
    # resuming continues from the last checkpoint to the end
    tiny.cli(run_dir, shards, f"--trainer.max_steps={last_step + 2}", ckpt_path="last")
    final = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    assert final["global_step"] == last_step + 2
    assert [step for step, _ in read_sample_keys(run_dir / "sample_keys" / "rank0.txt")][-2:] == [
        last_step + 1, last_step + 2]
    assert not list((run_dir / "checkpoints").glob(".last.ckpt.tmp-*"))  # the stale temp was cleaned up
