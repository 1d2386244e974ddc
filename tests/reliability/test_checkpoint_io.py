"""Atomic checkpoint writes; clear errors for unreadable checkpoints."""

from __future__ import annotations

import pytest
import torch

from mmpretrain.plugins import AtomicCheckpointIO, load_checkpoint_file


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "ckpts" / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(3), "x": Unpicklable()}, path)
    assert io.load_checkpoint(path)["global_step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temp file left behind


def test_stale_temp_files_of_killed_writers_are_removed(tmp_path):
    path = tmp_path / "last.ckpt"
    (tmp_path / ".last.ckpt.tmp-99999").write_bytes(b"half a checkpoint")
    AtomicCheckpointIO().save_checkpoint({"global_step": 3}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    with pytest.raises(ValueError, match="weights_only=False"):
        AtomicCheckpointIO().load_checkpoint(path, weights_only=False)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.ckpt"
    torch.save({"w": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="cut.ckpt.*not a readable torch checkpoint"):
        load_checkpoint_file(path)
