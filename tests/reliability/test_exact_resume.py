"""Exact mid-epoch resume through the CLI: 2N steps straight == N steps, SIGTERM, `fit --ckpt_path
last`, N more steps — same sample keys in the same order, bit-identical parameters."""

from __future__ import annotations

import pytest
import torch

from mmpretrain.plugins import load_checkpoint_file

# 4 batches of 8 per epoch, so step 5 is mid-way through the second epoch
RUN = ["--trainer.max_steps=6", "--data.init_args.samples_per_epoch=32", "--data.init_args.num_workers=2"]


def test_sigterm_then_resume_equals_uninterrupted_run(tiny, image_text_shards, tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    tiny.cli(straight, image_text_shards["train"], *RUN)
    with pytest.raises(SystemExit):  # Lightning's SIGTERMException, raised after the step
        tiny.cli(interrupted, image_text_shards["train"], *RUN, extra_callbacks=[tiny.SignalAtStep(5)])
    stopped = load_checkpoint_file(interrupted / "checkpoints" / "last.ckpt")
    assert stopped["global_step"] == 5 and stopped["epoch"] == 1
    tiny.cli(interrupted, image_text_shards["train"], *RUN, ckpt_path="last")

    expected, resumed = tiny.keys(straight), tiny.keys(interrupted)
    assert [step for step, _ in expected] == [1, 2, 3, 4, 5, 6]
    assert resumed == expected
    epoch_keys = [k for _, keys in expected[:4] for k in keys]
    assert len(set(epoch_keys)) == 32  # no repeats within an epoch

    final_a = load_checkpoint_file(straight / "checkpoints" / "last.ckpt")
    final_b = load_checkpoint_file(interrupted / "checkpoints" / "last.ckpt")
    assert final_a["global_step"] == final_b["global_step"] == 6
    assert final_a["state_dict"].keys() == final_b["state_dict"].keys()
    for name, tensor in final_a["state_dict"].items():
        assert torch.equal(tensor, final_b["state_dict"][name]), name
    # the last step did change the weights, so the equality above is not vacuous
    assert not torch.equal(stopped["state_dict"]["model.visual.conv1.weight"],
                           final_a["state_dict"]["model.visual.conv1.weight"])
