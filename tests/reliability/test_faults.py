"""Bad configuration fails before training with one clear message; non-finite losses follow the
configured policy; pickled code in a checkpoint is refused."""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import lightning as L
import pytest
import torch

from mmpretrain.cli import run_lightning_cli
from mmpretrain.plugins import load_checkpoint_file
from mmpretrain.tasks.nonfinite import NonFiniteLossError


# ---------------------------------------------------------------- bad configuration
def _fails_before_training(tiny, run_dir: Path, shards, *overrides: str, subcommand: str = "fit",
                           ckpt_path: str | None = None) -> str:
    """Run the CLI, expect it to fail, return the error text (exception or argparse message)."""
    with pytest.raises((ValueError, RuntimeError, SystemExit)) as failure:
        tiny.cli(run_dir, shards, *overrides, subcommand=subcommand, ckpt_path=ckpt_path)
    assert not (run_dir / "sample_keys" / "rank0.txt").exists() or not (
        run_dir / "sample_keys" / "rank0.txt").read_text()
    return str(failure.value)


@pytest.mark.parametrize("override, expected", [
    ("--data.init_args.batch_sise=8", "batch_sise"),
    ("--data.init_args.batch_size=eight", "batch_size"),
    ("--trainer.max_stepz=3", "max_stepz"),
])
def test_unknown_keys_and_wrong_types_name_the_key(tiny, image_text_shards, tmp_path, capsys, override, expected):
    _fails_before_training(tiny, tmp_path, image_text_shards["train"], override)
    assert expected in capsys.readouterr().err


def test_missing_shard_files_are_named(tiny, tmp_path):
    message = _fails_before_training(tiny, tmp_path, str(tmp_path / "gone" / "shard-{000000..000003}.tar"))
    assert "4 of 4 shard files do not exist" in message and "shard-000000.tar" in message


def test_empty_shard_spec(tiny, tmp_path):
    assert "is empty" in _fails_before_training(tiny, tmp_path, " ")


def test_batch_larger_than_the_data_in_exact_mode(tiny, image_text_shards, tmp_path):
    message = _fails_before_training(tiny, tmp_path, image_text_shards["train"], "--data.init_args.batch_size=1024")
    assert "512 samples is not enough for one batch of 1024" in message


def test_checkpoint_of_another_architecture_names_keys_and_shapes(tiny, image_text_shards, tmp_path):
    wide = run_lightning_cli(["-c", tiny.config, f"--data.init_args.train_shards={image_text_shards['train']}",
                              "--model.init_args.model.init_args.vision.init_args.width=32"], run=False)
    path = tmp_path / "wide.ckpt"
    torch.save({"state_dict": wide.model.state_dict(), "pytorch-lightning_version": L.__version__}, path)
    message = _fails_before_training(tiny, tmp_path / "narrow", image_text_shards["train"],
                                     f"--data.init_args.val_shards={image_text_shards['val']}",
                                     subcommand="validate", ckpt_path=str(path))
    # the same counted summary as init_from, not torch's one line per tensor
    assert "does not match the model architecture (ContrastiveTask): 0 missing keys" in message
    assert "model.visual.conv1.weight: checkpoint (32, 3, 8, 8) vs model (16, 3, 8, 8)" in message


# ---------------------------------------------------------------- untrusted checkpoints
class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(tiny, image_text_shards, tmp_path):
    marker, evil = tmp_path / "pwned", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _RunsCode(marker)}, evil)
    with pytest.raises(ValueError, match="refusing to unpickle"):
        load_checkpoint_file(evil)
    message = _fails_before_training(tiny, tmp_path / "run", image_text_shards["train"], ckpt_path=str(evil))
    assert "refusing to unpickle" in message and str(evil) in message
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(ValueError, match="refusing to unpickle|not a readable torch checkpoint"):
        load_checkpoint_file(plain)
    assert not marker.exists()


# ---------------------------------------------------------------- non-finite loss
class NaNImagesAt(L.Callback):
    """Poisons the images of the batch trained at `step`, and snapshots parameters around it."""

    def __init__(self, step: int) -> None:
        self.step, self.before, self.after = step, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            batch["image"].fill_(math.nan)
            self.before = {k: v.clone() for k, v in pl_module.state_dict().items()}

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if trainer.global_step == self.step + 1:
            self.after = {k: v.clone() for k, v in pl_module.state_dict().items()}


def test_nonfinite_loss_skip_policy_drops_the_update(tiny, image_text_shards, tmp_path):
    poison = NaNImagesAt(step=1)
    cli = tiny.cli(tmp_path, image_text_shards["train"], "--trainer.max_steps=4", extra_callbacks=[poison])
    assert cli.trainer.global_step == 4 and cli.model.nonfinite_guard.skipped == 1
    assert all(torch.equal(poison.before[k], poison.after[k]) for k in poison.before)  # no update at all
    optimizer = cli.trainer.optimizers[0]
    assert {int(s["step"]) for s in optimizer.state.values()} == {3}  # Adam moments skipped it too
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())
    assert cli.trainer.callback_metrics["train/nonfinite_skipped"] == 1


def test_nonfinite_loss_stop_policy_saves_and_explains(tiny, image_text_shards, tmp_path):
    with pytest.raises(NonFiniteLossError) as stopped:
        tiny.cli(tmp_path, image_text_shards["train"], "--trainer.max_steps=4",
                 "--model.init_args.nonfinite_loss=stop", extra_callbacks=[NaNImagesAt(step=3)])
    saved = tmp_path / "checkpoints" / "nonfinite-step3.ckpt"
    assert "non-finite loss at step 3" in str(stopped.value) and str(saved) in str(stopped.value)
    checkpoint = load_checkpoint_file(saved)
    assert checkpoint["global_step"] == 3
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values())
    assert load_checkpoint_file(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 2
