"""EMA-of-weights callback, trainer precision options on CPU, torch.compile of the towers."""

import pytest
import torch
from lightning.pytorch import Callback, Trainer

from mmpretrain.callbacks import EMAWeights
from mmpretrain.losses import ClipLoss
from mmpretrain.models import CLIP, TextTransformer, VisionTransformer
from mmpretrain.tasks import ContrastiveTask


def _model() -> CLIP:
    torch.manual_seed(0)
    return CLIP(VisionTransformer(16, 4, 32, 1, 2, output_dim=16, attn_backend="math"),
                TextTransformer(8, 50, 32, 1, 2, output_dim=16, attn_backend="math"))


def _batch() -> dict:
    gen = torch.Generator().manual_seed(1)
    text = torch.randint(1, 48, (8, 8), generator=gen)
    text[:, -1] = 49
    return {"image": torch.randn(8, 3, 16, 16, generator=gen), "text": text,
            "label": torch.zeros(8, dtype=torch.long)}


class _Batches(torch.utils.data.IterableDataset):
    def __init__(self, n: int):
        self.n = n

    def __iter__(self):
        for _ in range(self.n):
            yield _batch()


class _Recorder(Callback):
    def __init__(self):
        self.after_step, self.during_val = [], []

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.after_step.append({k: v.clone() for k, v in pl_module.model.state_dict().items()})

    def on_validation_batch_start(self, trainer, pl_module, *args):
        self.during_val.append({k: v.clone() for k, v in pl_module.model.state_dict().items()})


def _loader(n):
    return torch.utils.data.DataLoader(_Batches(n), batch_size=None)


def _trainer(callbacks, precision="32-true", steps=3, **kwargs) -> Trainer:
    return Trainer(max_steps=steps, accelerator="cpu", precision=precision, logger=False,
                   enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, callbacks=callbacks, **kwargs)


def test_ema_follows_the_recurrence_and_is_evaluated_then_swapped_back():
    recorder, ema = _Recorder(), EMAWeights(decay=0.5)
    task = ContrastiveTask(_model(), ClipLoss(), zeroshot=False,
                           optimizer=lambda p: torch.optim.SGD(p, lr=0.5))
    trainer = _trainer([recorder, ema], limit_val_batches=1, val_check_interval=3)
    trainer.fit(task, _loader(3), _loader(1))
    expected = _model().state_dict()  # the EMA starts from the initial weights
    for state in recorder.after_step:
        expected = {k: 0.5 * expected[k] + 0.5 * state[k] for k in expected}
    for key, value in expected.items():
        torch.testing.assert_close(ema.ema[key], value, msg=key)
        torch.testing.assert_close(recorder.during_val[-1][key], value, msg=key)
        torch.testing.assert_close(task.model.state_dict()[key], recorder.after_step[-1][key])
    assert not torch.allclose(ema.ema["visual.proj"], recorder.after_step[-1]["visual.proj"])
    assert ema.state_dict()["ema"] is ema.ema
    with pytest.raises(ValueError, match="decay"):
        EMAWeights(decay=1.0)


def test_ema_can_leave_evaluation_to_the_online_weights():
    recorder = _Recorder()
    task = ContrastiveTask(_model(), ClipLoss(), zeroshot=False)
    _trainer([recorder, EMAWeights(0.9, evaluate="online")], limit_val_batches=1,
             val_check_interval=2, steps=2).fit(task, _loader(2), _loader(1))
    torch.testing.assert_close(recorder.during_val[-1]["visual.proj"],
                               recorder.after_step[-1]["visual.proj"])


class _TowerDtype(Callback):
    def on_train_batch_start(self, trainer, pl_module, *args):
        self.handle = pl_module.model.visual.register_forward_hook(
            lambda m, a, out: setattr(self, "dtype", out.dtype))


@pytest.mark.parametrize("precision,dtype", [("32-true", torch.float32),
                                             ("bf16-mixed", torch.bfloat16),
                                             # Lightning autocasts 16-mixed to bf16 on CPU
                                             ("16-mixed", torch.bfloat16)])
def test_cpu_precisions_run_the_towers_in_that_dtype(precision, dtype):
    probe = _TowerDtype()
    task = ContrastiveTask(_model(), ClipLoss(), zeroshot=False, retrieval=False)
    _trainer([probe], precision=precision, steps=1, limit_val_batches=0).fit(task, _loader(1))
    assert probe.dtype == dtype
    assert task.model.visual.proj.dtype == torch.float32  # master weights stay fp32


def test_compile_towers_keeps_state_dict_keys_and_outputs():
    plain = ContrastiveTask(_model(), ClipLoss())
    compiled = ContrastiveTask(_model(), ClipLoss(), compile_towers=True, compile_backend="eager")
    assert compiled.model.visual._compiled_call_impl is not None
    assert compiled.model.text._compiled_call_impl is not None
    assert list(compiled.model.state_dict()) == list(plain.model.state_dict())
    batch = _batch()
    torch.testing.assert_close(compiled.encode(batch)["image_features"],
                               plain.encode(batch)["image_features"])
