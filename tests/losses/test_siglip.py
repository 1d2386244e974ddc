import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from mmpretrain.losses import SigLipLoss
from mmpretrain.models import CLIP, TextTransformer, VisionTransformer

WORLD_SIZE, LOCAL_BATCH, DIM = 2, 3, 8


def _features(batch: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(batch, DIM, generator=gen, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(batch, DIM, generator=gen, dtype=torch.float64), dim=-1)
    return image, text


def _reference_loss(image, text, scale, bias):
    """The spec's double sum, one pair at a time."""
    n = image.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(n):
            z = 1.0 if i == j else -1.0
            total = total - torch.log(torch.sigmoid(z * (scale * image[i] @ text[j] + bias)))
    return total / n


def test_single_process_matches_formula_and_open_clip():
    import open_clip.loss  # here, not at the top: spawned rank workers import this module

    image, text = _features(5)
    scale, bias = torch.tensor(10.0, dtype=torch.float64), torch.tensor(-10.0, dtype=torch.float64)
    ours = SigLipLoss()(image, text, scale, bias)
    torch.testing.assert_close(ours, _reference_loss(image, text, scale, bias))
    torch.testing.assert_close(ours, open_clip.loss.SigLipLoss()(image, text, scale, bias))


def test_aligned_pairs_beat_shuffled_and_bias_is_required():
    image, _ = _features(4)
    scale, bias = torch.tensor(20.0, dtype=torch.float64), torch.tensor(-5.0, dtype=torch.float64)
    assert SigLipLoss()(image, image, scale, bias) < SigLipLoss()(image, image.roll(1, 0), scale,
                                                                 bias)
    with pytest.raises(ValueError, match="init_logit_bias"):
        SigLipLoss()(image, image, scale)
    with pytest.raises(ValueError, match="same shape"):
        SigLipLoss()(image, image[:3], scale, bias)


def test_siglip_model_init_is_unclamped_scale_10_bias_minus_10():
    model = CLIP(VisionTransformer(32, 16, 32, 1, 2, output_dim=16),
                 TextTransformer(8, 100, 32, 1, 2, output_dim=16),
                 init_logit_scale=math.log(10), init_logit_bias=-10.0, max_logit_scale=None)
    torch.testing.assert_close(model.scale(), torch.tensor(10.0))
    assert model.logit_bias.item() == -10.0
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1000.0))
    torch.testing.assert_close(model.scale(), torch.tensor(1000.0))  # no clamp for SigLIP


def _rank_worker(rank: int, init_file: str, result_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=WORLD_SIZE)
    try:
        image_all, text_all = _features(WORLD_SIZE * LOCAL_BATCH)
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        image = image_all[rows].clone().requires_grad_()
        text = text_all[rows].clone().requires_grad_()
        log_scale = torch.tensor(math.log(10.0), dtype=torch.float64, requires_grad=True)
        bias = torch.tensor(-10.0, dtype=torch.float64, requires_grad=True)
        loss = SigLipLoss()(image, text, log_scale.exp(), bias)
        loss.backward()
        torch.save({"loss": loss.detach(), "image_grad": image.grad, "text_grad": text.grad,
                    "scale_grad": log_scale.grad, "bias_grad": bias.grad},
                   f"{result_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_equal_single_process_on_concatenated_batch(tmp_path):
    mp.start_processes(_rank_worker, args=(str(tmp_path / "init"), str(tmp_path)),
                       nprocs=WORLD_SIZE, start_method="spawn")
    per_rank = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]

    image, text = (t.requires_grad_() for t in _features(WORLD_SIZE * LOCAL_BATCH))
    log_scale = torch.tensor(math.log(10.0), dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-10.0, dtype=torch.float64, requires_grad=True)
    full = SigLipLoss()(image, text, log_scale.exp(), bias)
    full.backward()

    # DDP averages losses and gradients over ranks.
    torch.testing.assert_close(torch.stack([r["loss"] for r in per_rank]).mean(), full.detach())
    for rank, result in enumerate(per_rank):
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        torch.testing.assert_close(result["image_grad"] / WORLD_SIZE, image.grad[rows])
        torch.testing.assert_close(result["text_grad"] / WORLD_SIZE, text.grad[rows])
    torch.testing.assert_close(torch.stack([r["scale_grad"] for r in per_rank]).mean(),
                               log_scale.grad)
    torch.testing.assert_close(torch.stack([r["bias_grad"] for r in per_rank]).mean(), bias.grad)
