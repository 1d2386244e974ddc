"""ContinualDataModule: P/D/B composition per step, replay only from past tasks, eval sets per
task with their own classes, and a data state that resumes the stream exactly."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from mmpretrain.continual.stream import StreamTask, TaskStream
from mmpretrain.continual.datamodule import (SOURCE_BUFFER, SOURCE_PRETRAIN, SOURCE_TASK,
                                                  ContinualDataModule)


def _datamodule(shards, num_workers: int = 0, **kwargs) -> ContinualDataModule:
    stream = TaskStream([StreamTask(f"t{k}", f"task{k}/train", f"task{k}/eval") for k in range(3)],
                        steps_per_task=3, root=str(shards["root"]))
    options = dict(train_shards=str(shards["train"]), val_shards=str(shards["val"]), batch_size=12,
                   num_workers=num_workers, image_size=32, context_length=32, buffer_size=24,
                   shuffle_buffer=8, persistent_workers=False)
    return ContinualDataModule(stream=stream, **{**options, **kwargs})


def _batches(dm: ContinualDataModule, count: int) -> list[dict]:
    return [dm.on_before_batch_transfer(b, 0) for b in itertools.islice(dm.train_dataloader(), count)]


def test_batches_mix_pool_task_and_past_task_replay(continual_stream_shards):
    dm = _datamodule(continual_stream_shards)
    batches = _batches(dm, 9)
    assert len(batches) == 9 and all(b["image"].shape == (12, 3, 32, 32) for b in batches)
    for step, batch in enumerate(batches):
        task = step // 3
        counts = [int((batch["source"] == s).sum()) for s in (SOURCE_PRETRAIN, SOURCE_TASK, SOURCE_BUFFER)]
        assert counts == ([6, 6, 0] if task == 0 else [4, 4, 4])
        assert (batch["task"][batch["source"] == SOURCE_TASK] == task).all()
        replayed = batch["task"][batch["source"] == SOURCE_BUFFER]
        assert ((replayed >= 0) & (replayed < task)).all()
        assert (batch["label"][batch["source"] != SOURCE_TASK] == -1).all()
    # task rows carry their task's labels (6 classes each in the synthetic stream)
    assert batches[0]["label"][batches[0]["source"] == SOURCE_TASK].max() < 6
    assert dm.buffer.seen == 3 * 6 + 6 * 4


def test_stream_ends_after_the_last_task(continual_stream_shards):
    dm = _datamodule(continual_stream_shards)
    assert len(list(dm.train_dataloader())) == 9


@pytest.mark.parametrize("num_workers", [0, 2])
def test_state_dict_resumes_batches_and_buffer(continual_stream_shards, num_workers):
    straight = _datamodule(continual_stream_shards, num_workers)
    expected = _batches(straight, 9)
    first = _datamodule(continual_stream_shards, num_workers)
    _batches(first, 4)
    state = first.state_dict()
    resumed = _datamodule(continual_stream_shards, num_workers)
    resumed.load_state_dict(state)
    rest = _batches(resumed, 5)
    for want, got in zip(expected[4:], rest):
        for key in ("image", "text", "source", "task", "label"):
            assert torch.equal(want[key], got[key]), key
    assert torch.equal(straight.buffer.entries["text"], resumed.buffer.entries["text"])


def test_eval_sets_use_each_directory_classes(continual_stream_shards):
    dm = _datamodule(continual_stream_shards, max_eval_samples=20)
    sets = dm.eval_sets()
    assert [(s.name, s.role, s.task) for s in sets] == [
        ("t0", "task", 0), ("t1", "task", 1), ("t2", "task", 2), ("heldout", "heldout", None)]
    classes = json.loads((continual_stream_shards["root"] / "task1" / "eval" / "classes.json").read_text())
    assert sets[1].prompts_CTL.shape[:2] == (len(classes["classnames"]), len(classes["templates"]))
    assert all(s.images_N3HW.shape == (20, 3, 32, 32) and s.labels_N.max() < s.prompts_CTL.shape[0] for s in sets)


def test_bad_configs(continual_stream_shards):
    with pytest.raises(ValueError, match="mode must be 'resampled'"):
        _datamodule(continual_stream_shards, mode="exact")
    with pytest.raises(ValueError, match="buffer_size"):
        _datamodule(continual_stream_shards, buffer_size=0)
