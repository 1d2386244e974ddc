"""ContinualTask through the CLI: a run interrupted mid-task and resumed with --ckpt_path
equals the uninterrupted run (weights, task index, replay buffer, merge and EWC state, CTP
models, evaluations); merging changes what is evaluated and what the next task starts from; LoRA
runs export merged plain weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmpretrain.cli import run_lightning_cli
from mmpretrain.continual.merging import WeightMerging
from mmpretrain.models import CLIP, TextTransformer, VisionTransformer
from mmpretrain.plugins import load_checkpoint_file
from mmpretrain.tasks import ContinualTask

REPO = Path(__file__).resolve().parents[2]
BASE = [REPO / "configs" / "trainer" / "cpu.yaml", REPO / "configs" / "exp" / "continual" / "quickstart.yaml",
        Path(__file__).with_name("continual_tiny.yaml")]
METHOD = ["--model.init_args.merging.class_path=mmpretrain.continual.WeightMerging",
          "--model.init_args.merging.init_args.mode=ema", "--model.init_args.ctp=true",
          "--model.init_args.ctp_queue_size=32", "--model.init_args.ewc.class_path=mmpretrain.continual.EWC"]


def _fit(root: Path, shards: dict, *args: str, ckpt_path: str | None = None):
    argv = ["fit", *(a for path in BASE for a in ("-c", str(path))), f"--trainer.default_root_dir={root}",
            f"--data.init_args.train_shards={shards['train']}", f"--data.init_args.val_shards={shards['val']}",
            f"--data.init_args.stream.root={shards['root']}", *args]
    if ckpt_path is not None:
        argv.append(f"--ckpt_path={ckpt_path}")
    return run_lightning_cli(argv)


def _assert_nested_equal(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_nested_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_nested_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_resume_mid_task_equals_uninterrupted_run(continual_stream_shards, tmp_path):
    # (resuming with DataLoader workers is covered in tests/continual/test_datamodule.py)
    workers = "--data.init_args.num_workers=0"
    straight = _fit(tmp_path / "straight", continual_stream_shards, *METHOD, workers)
    # stop at step 4: task 1 of 3, one step into it, with past-task samples in the buffer
    _fit(tmp_path / "interrupted", continual_stream_shards, *METHOD, workers, "--trainer.max_steps=4")
    stopped = load_checkpoint_file(tmp_path / "interrupted" / "checkpoints" / "last.ckpt")
    assert stopped["global_step"] == 4
    resumed = _fit(tmp_path / "interrupted", continual_stream_shards, *METHOD, workers,
                   ckpt_path=str(tmp_path / "interrupted" / "checkpoints" / "last.ckpt"))
    assert straight.trainer.global_step == resumed.trainer.global_step == 9
    assert resumed.model.current_task == straight.model.current_task == 2

    final_a = load_checkpoint_file(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    final_b = load_checkpoint_file(tmp_path / "interrupted" / "checkpoints" / "last.ckpt")
    # weights, CTP momentum/reference models and queue, merge and EWC state, data state + buffer
    for key in ("state_dict", "continual_merging", "continual_ewc"):
        _assert_nested_equal(final_a[key], final_b[key], key)
    data_a, data_b = straight.datamodule.state_dict(), resumed.datamodule.state_dict()
    _assert_nested_equal(data_a, data_b, "datamodule")
    mix = straight.datamodule.mix  # every task row of every step was offered to the buffer
    assert straight.datamodule.buffer.seen == sum(mix.counts(step // 3)[1] for step in range(9))
    assert not torch.equal(stopped["state_dict"]["model.visual.conv1.weight"],
                           final_a["state_dict"]["model.visual.conv1.weight"])
    evaluations = [(e.step, e.phase, e.a_ka, e.a_zs) for e in straight.trainer.callbacks
                   for e in getattr(e, "evaluations", [])]
    resumed_evaluations = [(e.step, e.phase, e.a_ka, e.a_zs) for e in resumed.trainer.callbacks
                           for e in getattr(e, "evaluations", [])]
    assert resumed_evaluations == evaluations
    assert [phase for _, phase, _, _ in evaluations] == ["start", "probe", "end"] * 1 + ["probe", "end"] * 2
    results = (tmp_path / "interrupted" / "continual" / "results.md").read_text()
    assert "task 2 (warm_pointed)" in results


def _tiny_task(**kwargs) -> ContinualTask:
    model = CLIP(VisionTransformer(image_size=16, patch_size=8, width=16, layers=1, heads=2, output_dim=16),
                 TextTransformer(context_length=8, vocab_size=64, width=16, layers=1, heads=2, output_dim=16))
    task = ContinualTask(model=model, zeroshot=False, retrieval=False, **kwargs)
    task.setup("fit")
    return task


def _shift(task: ContinualTask, amount: float) -> dict[str, torch.Tensor]:
    """Pretend a task trained: move every weight by `amount`; return the new weights."""
    with torch.no_grad():
        for param in task.model.parameters():
            param.add_(amount)
    return {k: v.clone() for k, v in task.model.state_dict().items()}


def test_zs_merge_evaluates_the_running_merge_and_restarts_from_theta_0():
    task = _tiny_task(merging=WeightMerging("zs", 0.5))
    theta_0 = {k: v.clone() for k, v in task.model.state_dict().items()}
    task.begin_task(0)
    _shift(task, 1.0)
    task.end_task(0)
    weight = "visual.conv1.weight"
    assert torch.allclose(task.model.state_dict()[weight], theta_0[weight] + 0.5)  # evaluated: merge
    task.begin_task(1)
    assert torch.equal(task.model.state_dict()[weight], theta_0[weight])  # next task: theta_0 again
    _shift(task, 2.0)
    task.end_task(1)
    assert torch.allclose(task.model.state_dict()[weight], theta_0[weight] + 0.5 * 2.0 + 0.25)


def test_ema_merge_continues_from_the_merge_and_ctp_resets_its_models():
    task = _tiny_task(merging=WeightMerging("ema", 0.5), ctp=True, ctp_queue_size=8)
    weight = "visual.conv1.weight"
    theta_0 = task.model.state_dict()[weight].clone()
    task.begin_task(0)
    assert torch.equal(task.reference_model.state_dict()[weight], theta_0)
    _shift(task, 1.0)
    task.end_task(0)
    task.begin_task(1)
    start = task.model.state_dict()[weight]
    assert torch.allclose(start, theta_0 + 0.5)
    # CTP: the reference is frozen at the task start and the momentum model restarts from it
    assert torch.equal(task.reference_model.state_dict()[weight], start)
    assert torch.equal(task.momentum_model.state_dict()[weight], start)
    assert not any(p.requires_grad for p in task.reference_model.parameters())


def test_max_steps_beyond_the_stream_is_refused(continual_stream_shards, tmp_path):
    with pytest.raises(ValueError, match=r"trainer.max_steps=10: .* 3 tasks x 3 steps needs 0 < max_steps <= 9"):
        _fit(tmp_path, continual_stream_shards, "--trainer.max_steps=10")
