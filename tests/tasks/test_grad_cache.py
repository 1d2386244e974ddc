"""GradCache: chunked encoding gives the loss and gradients of one big batch."""

import math

import pytest
import torch
from lightning.pytorch import Trainer

from mmpretrain.losses import ClipLoss, SigLipLoss
from mmpretrain.models import CLIP, TextTransformer, VisionTransformer
from mmpretrain.tasks import ContrastiveTask
from mmpretrain.tasks.grad_cache import grad_cache_backward, split_batch


def _model(patch_dropout: float = 0.0, siglip: bool = False) -> CLIP:
    torch.manual_seed(0)
    vision = VisionTransformer(image_size=16, patch_size=4, width=32, layers=2, heads=2,
                               output_dim=16, attn_backend="math", patch_dropout=patch_dropout)
    text = TextTransformer(context_length=8, vocab_size=50, width=32, layers=2, heads=2,
                           output_dim=16, attn_backend="math")
    if siglip:
        return CLIP(vision, text, math.log(10), -10.0, max_logit_scale=None).double()
    return CLIP(vision, text).double()


def _batch(size: int = 8) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    text = torch.randint(1, 48, (size, 8), generator=gen)
    text[:, -1] = 49
    return {"image": torch.randn(size, 3, 16, 16, generator=gen, dtype=torch.float64),
            "text": text}


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _objective(loss):
    return lambda out: loss(out["image_features"], out["text_features"], out["logit_scale"],
                            out["logit_bias"])


@pytest.mark.parametrize("loss,siglip,patch_dropout", [(ClipLoss(), False, 0.0),
                                                       (SigLipLoss(), True, 0.5)])
def test_chunked_step_equals_one_big_batch(loss, siglip, patch_dropout):
    batch = _batch()
    big = _model(patch_dropout, siglip)
    torch.manual_seed(7)
    expected = _objective(loss)(big(batch["image"], batch["text"]))
    expected.backward()

    cached = _model(patch_dropout, siglip)
    torch.manual_seed(7)
    backward_calls = []
    got, out = grad_cache_backward(lambda b: cached(b["image"], b["text"]), _objective(loss),
                                   batch, num_chunks=4,
                                   backward=lambda t: backward_calls.append(1) or t.backward())
    torch.testing.assert_close(got, expected.detach())
    assert out["image_features"].shape == (8, 16) and len(backward_calls) == 4
    expected_grads, got_grads = _grads(big), _grads(cached)
    assert expected_grads.keys() == got_grads.keys()
    for name, grad in expected_grads.items():
        torch.testing.assert_close(got_grads[name], grad, msg=name)
    if siglip:
        assert got_grads["logit_bias"].abs() > 0


def test_patch_dropout_without_rng_replay_would_differ():
    """Guards the test above: with patch dropout, chunks re-encoded under a fresh RNG state
    give other features, so equal gradients really come from replaying the RNG."""
    model = _model(0.5)
    batch = _batch()
    torch.manual_seed(7)
    first = model(batch["image"], batch["text"])["image_features"]
    second = model(batch["image"], batch["text"])["image_features"]
    assert not torch.allclose(first, second)


def test_split_batch_validates_sizes():
    with pytest.raises(ValueError, match="divisible"):
        split_batch(_batch(6), 4)
    chunks = split_batch({**_batch(8), "key": ["a"] * 8}, 2)
    assert [c["image"].shape[0] for c in chunks] == [4, 4] and chunks[0]["key"] == ["a"] * 8


class _Batches(torch.utils.data.IterableDataset):
    def __iter__(self):
        for _ in range(2):
            yield {**_batch(), "label": torch.zeros(8, dtype=torch.long)}


def _train_two_steps(chunks: int) -> dict[str, torch.Tensor]:
    task = ContrastiveTask(_model(), ClipLoss(), grad_cache_chunks=chunks, zeroshot=False,
                           retrieval=False,
                           optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    trainer = Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      limit_val_batches=0)
    trainer.fit(task, torch.utils.data.DataLoader(_Batches(), batch_size=None))
    assert trainer.global_step == 2
    return {n: p.detach().clone() for n, p in task.model.named_parameters()}


def test_task_with_grad_cache_trains_like_the_default_path():
    plain, cached = _train_two_steps(1), _train_two_steps(4)
    for name, value in plain.items():
        torch.testing.assert_close(cached[name], value, msg=name)
    assert not torch.equal(plain["visual.proj"], _model().visual.proj)


def _rank_worker(rank: int, init_file: str, result_dir: str) -> None:
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        model = _model()
        batch = {k: v[rank * 4:(rank + 1) * 4] for k, v in _batch(8).items()}
        loss, _ = grad_cache_backward(lambda b: model(b["image"], b["text"]),
                                      _objective(ClipLoss()), batch, num_chunks=2)
        torch.save({"loss": loss, "grads": _grads(model)}, f"{result_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_with_grad_cache_equal_one_process_on_the_whole_batch(tmp_path):
    import torch.multiprocessing as mp
    mp.start_processes(_rank_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2,
                       start_method="spawn")
    per_rank = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    big = _model()
    batch = _batch(8)
    expected = _objective(ClipLoss())(big(batch["image"], batch["text"]))
    expected.backward()
    # DDP averages the ranks' losses and gradients
    torch.testing.assert_close((per_rank[0]["loss"] + per_rank[1]["loss"]) / 2, expected.detach())
    for name, grad in _grads(big).items():
        torch.testing.assert_close((per_rank[0]["grads"][name] + per_rank[1]["grads"][name]) / 2,
                                   grad, msg=name)
