"""ContrastiveTask(init_from=...): weights applied at setup, a resumed checkpoint wins, and
saved checkpoints record the open_clip architecture."""

from __future__ import annotations

from pathlib import Path

import open_clip
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from mmpretrain.models import clip_from_open_clip_config, from_open_clip_state_dict
from mmpretrain.models.checkpoint_io import load_state_dict_file, read_checkpoint_file
from mmpretrain.models.checkpoints import (
    ARCHITECTURE_ERROR_KEY,
    ARCHITECTURE_KEY,
    open_clip_config_from_model,
)
from mmpretrain.tasks import ContrastiveTask

SMALL_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1},
}


def _batches(count: int = 4, batch: int = 4) -> DataLoader:
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        text = torch.randint(1, 98, (batch, 8), generator=gen)
        text[:, 5] = 99
        text[:, 6:] = 0
        batches.append({"image": torch.randn(batch, 3, 16, 16, generator=gen), "text": text})
    return DataLoader(batches, batch_size=None)


class _WeightsAtFitStart(Callback):
    def on_fit_start(self, trainer, pl_module):
        self.state = {k: v.clone() for k, v in pl_module.model.state_dict().items()}


def _fit(task: ContrastiveTask, root: Path, max_steps: int, ckpt_path: str | None = None):
    recorder = _WeightsAtFitStart()
    trainer = Trainer(accelerator="cpu", max_steps=max_steps, logger=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                      default_root_dir=root,
                      callbacks=[recorder, ModelCheckpoint(dirpath=root / "ckpt", save_last=True)])
    trainer.fit(task, train_dataloaders=_batches(), ckpt_path=ckpt_path)
    return recorder.state


def _new_task(init_from: str | None) -> ContrastiveTask:
    return ContrastiveTask(model=clip_from_open_clip_config(SMALL_CFG, attn_backend="sdpa"),
                           zeroshot=False, retrieval=False, init_from=init_from)


def _assert_state_equal(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], atol=0, rtol=0, msg=key)


def test_init_from_then_resume_wins(tmp_path):
    torch.manual_seed(123)
    pretrained = from_open_clip_state_dict(open_clip.CLIP(**SMALL_CFG).state_dict())
    weights = tmp_path / "pretrained.safetensors"
    save_file({k: v.contiguous() for k, v in pretrained.items()}, str(weights))

    torch.manual_seed(0)
    task = _new_task(str(weights))
    at_start = _fit(task, tmp_path / "run", max_steps=2)
    _assert_state_equal(at_start, pretrained)
    trained = {k: v.clone() for k, v in task.model.state_dict().items()}
    assert not torch.equal(trained["visual.proj"], pretrained["visual.proj"])

    last = tmp_path / "run" / "ckpt" / "last.ckpt"
    checkpoint = read_checkpoint_file(last)  # weights_only=True must accept our checkpoints
    assert checkpoint[ARCHITECTURE_KEY] == open_clip_config_from_model(task.model)
    _assert_state_equal(load_state_dict_file(last), trained)

    # Resume with init_from still configured: the Lightning checkpoint is restored over it.
    torch.manual_seed(1)
    resumed = _new_task(str(weights))
    at_resume = _fit(resumed, tmp_path / "resumed", max_steps=2, ckpt_path=str(last))
    _assert_state_equal(at_resume, trained)

    # A run's .ckpt is itself a valid init_from source.
    torch.manual_seed(2)
    from_run = _new_task(str(last))
    from_run.setup("validate")
    _assert_state_equal(from_run.model.state_dict(), trained)
    from_run.setup("validate")  # applied once: a second stage does not reload
    assert from_run._init_from_applied


def test_unrepresentable_model_records_why(tmp_path):
    class TwoTowers(torch.nn.Module):
        def forward(self, image, text):
            raise NotImplementedError

    task = ContrastiveTask(model=TwoTowers())
    checkpoint: dict = {}
    task.on_save_checkpoint(checkpoint)
    assert checkpoint[ARCHITECTURE_KEY] is None
    assert "only represent mmpretrain.models.CLIP, got TwoTowers" in (
        checkpoint[ARCHITECTURE_ERROR_KEY])
