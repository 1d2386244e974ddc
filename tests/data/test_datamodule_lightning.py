"""The datamodule inside a real Lightning fit: epoch hook, batch hook, checkpointed data state."""

from __future__ import annotations

import warnings
from collections import Counter

import lightning as L
import pytest
import torch

from mmpretrain.data.datamodule import WebDataModule


class _Interrupt(Exception):
    pass


class KeyRecorder(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.seen: list[tuple[int, tuple[str, ...]]] = []

    def training_step(self, batch, batch_idx):
        assert "_data_state" not in batch
        self.seen.append((self.current_epoch, tuple(batch["key"])))
        return self.layer(batch["image"].mean(dim=(2, 3))).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class InterruptAt(L.Callback):
    def __init__(self, step: int, path: str) -> None:
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)
            raise _Interrupt


def fit(datamodule: WebDataModule, callbacks=(), ckpt_path: str | None = None) -> KeyRecorder:
    model = KeyRecorder()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    return model


def test_mid_epoch_checkpoint_resumes_exactly(make_shards, tmp_path):
    train_dir = make_shards("t", [10, 10, 10, 10], kind="image")[0].parent

    def datamodule() -> WebDataModule:
        return WebDataModule(train_shards=str(train_dir), batch_size=4, num_workers=2, mode="exact",
                             shuffle_buffer=5, image_size=16, context_length=8)

    full = fit(datamodule()).seen
    epochs = [[keys for epoch, keys in full if epoch == e] for e in (0, 1)]
    assert len(epochs[0]) == len(epochs[1]) == 10 and epochs[0] != epochs[1]

    ckpt = str(tmp_path / "mid.ckpt")
    interrupted = KeyRecorder()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[InterruptAt(13, ckpt)])
    with warnings.catch_warnings(), pytest.raises(_Interrupt):
        warnings.simplefilter("ignore")
        trainer.fit(interrupted, datamodule=datamodule())
    saved = torch.load(ckpt, weights_only=True)["WebDataModule"]["train_stream_per_rank"][0]
    assert saved["epoch"] == 1 and sum(w["batches"] for w in saved["workers"].values()) == 3

    resumed = fit(datamodule(), ckpt_path=ckpt).seen
    before = Counter(keys for epoch, keys in interrupted.seen if epoch == 1)
    after = Counter(keys for epoch, keys in resumed if epoch == 1)
    assert sum(before.values()) == 3 and sum(after.values()) == 7
    assert before + after == Counter(epochs[1])
