import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from mmpretrain.losses import ClipLoss

WORLD_SIZE, LOCAL_BATCH, DIM = 2, 3, 8
MODES = [(True, True), (False, True), (True, False), (False, False)]  # (local_loss, with_grad)


def _features(batch: int, seed: int = 0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(batch, DIM, generator=gen, dtype=dtype), dim=-1)
    text = F.normalize(torch.randn(batch, DIM, generator=gen, dtype=dtype), dim=-1)
    return image, text


def _reference_loss(image, text, scale, bias=0.0, smoothing=0.0):
    """Row-by-row symmetric cross entropy, written out with logsumexp."""
    n = image.shape[0]
    total = 0.0
    for logits in (scale * image @ text.T + bias, scale * text @ image.T + bias):
        for i in range(n):
            log_probs = logits[i] - torch.logsumexp(logits[i], dim=0)
            total = total - (1 - smoothing) * log_probs[i] - smoothing * log_probs.mean()
    return total / (2 * n)


def test_single_process_matches_reference():
    image, text = _features(5)
    scale = torch.tensor(1 / 0.07, dtype=torch.float64)
    torch.testing.assert_close(ClipLoss()(image, text, scale), _reference_loss(image, text, scale))
    bias = torch.tensor(-2.5, dtype=torch.float64)
    torch.testing.assert_close(ClipLoss()(image, text, scale, bias),
                               _reference_loss(image, text, scale, bias=bias))
    torch.testing.assert_close(ClipLoss(label_smoothing=0.1)(image, text, scale),
                               _reference_loss(image, text, scale, smoothing=0.1))


def test_perfectly_aligned_pairs_give_small_loss():
    image, _ = _features(4)
    aligned = ClipLoss()(image, image, torch.tensor(100.0, dtype=torch.float64))
    shuffled = ClipLoss()(image, image.roll(1, dims=0), torch.tensor(100.0, dtype=torch.float64))
    assert aligned < 0.1 < shuffled


def test_bad_inputs_raise():
    image, text = _features(4)
    with pytest.raises(ValueError, match="same shape"):
        ClipLoss()(image, text[:3], torch.tensor(10.0))
    with pytest.raises(ValueError, match="label_smoothing"):
        ClipLoss(label_smoothing=1.0)


def _rank_worker(rank: int, init_file: str, result_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=WORLD_SIZE)
    try:
        image_all, text_all = _features(WORLD_SIZE * LOCAL_BATCH)
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        results = {}
        for local_loss, with_grad in MODES:
            image = image_all[rows].clone().requires_grad_()
            text = text_all[rows].clone().requires_grad_()
            log_scale = torch.tensor(math.log(1 / 0.07), dtype=torch.float64, requires_grad=True)
            loss = ClipLoss(local_loss=local_loss, gather_with_grad=with_grad)(
                image, text, log_scale.exp())
            loss.backward()
            results[f"{local_loss}-{with_grad}"] = {
                "loss": loss.detach(), "image_grad": image.grad, "text_grad": text.grad,
                "scale_grad": log_scale.grad}
        torch.save(results, f"{result_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clip_loss_ddp")
    mp.start_processes(_rank_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD_SIZE,
                       start_method="spawn")
    return [torch.load(tmp / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]


def _single_process_reference():
    image, text = (t.requires_grad_() for t in _features(WORLD_SIZE * LOCAL_BATCH))
    log_scale = torch.tensor(math.log(1 / 0.07), dtype=torch.float64, requires_grad=True)
    loss = ClipLoss()(image, text, log_scale.exp())
    loss.backward()
    return loss.detach(), image.grad, text.grad, log_scale.grad


@pytest.mark.parametrize("local_loss,with_grad", MODES)
def test_two_ranks_loss_equals_full_batch(two_rank_results, local_loss, with_grad):
    full_loss = _single_process_reference()[0]
    losses = [results[f"{local_loss}-{with_grad}"]["loss"] for results in two_rank_results]
    # DDP averages over ranks; the local form is per-rank rows, the full form repeats the total.
    torch.testing.assert_close(torch.stack(losses).mean(), full_loss)
    if not local_loss:
        torch.testing.assert_close(losses[0], full_loss)


@pytest.mark.parametrize("local_loss", [True, False])
def test_two_ranks_gradients_equal_full_batch(two_rank_results, local_loss):
    _, image_grad, text_grad, scale_grad = _single_process_reference()
    per_rank = [results[f"{local_loss}-True"] for results in two_rank_results]
    for rank, result in enumerate(per_rank):
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        # Each rank holds d(sum of rank losses)/d(own features); DDP's mean divides by W.
        torch.testing.assert_close(result["image_grad"] / WORLD_SIZE, image_grad[rows])
        torch.testing.assert_close(result["text_grad"] / WORLD_SIZE, text_grad[rows])
    torch.testing.assert_close(torch.stack([r["scale_grad"] for r in per_rank]).mean(),
                               scale_grad)


def test_two_ranks_without_grad_gather_differentiate_only_own_features(two_rank_results):
    _, full_image_grad, _, _ = _single_process_reference()
    for rank, results in enumerate(two_rank_results):
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        # Full matrix: every rank's loss is the total, and only its own slice gets gradient.
        torch.testing.assert_close(results["False-False"]["image_grad"], full_image_grad[rows])
        # Local rows: gradient of this rank's rows alone, through its own features only.
        image, text = (t.requires_grad_() for t in _features(WORLD_SIZE * LOCAL_BATCH))
        scale = torch.tensor(1 / 0.07, dtype=torch.float64)
        labels = torch.arange(WORLD_SIZE * LOCAL_BATCH)[rows]
        rank_loss = (F.cross_entropy(scale * image[rows] @ text.T, labels)
                     + F.cross_entropy(scale * text[rows] @ image.T, labels)) / 2
        rank_loss.backward()
        torch.testing.assert_close(results["True-False"]["image_grad"], image.grad[rows])
        torch.testing.assert_close(results["True-False"]["text_grad"], text.grad[rows])
