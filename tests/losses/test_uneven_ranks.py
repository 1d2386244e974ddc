"""Two gloo ranks holding different numbers of rows (3 + 5, and 0 + 4): the gathered
contrastive losses, the next-token loss (plain and PRIOR-weighted) and the evaluation gather
equal one process on the concatenated batch,
loss and gradients (DDP averages the ranks' gradients, so the reference is their mean)."""

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from mmpretrain.eval.distributed import gather_uneven
from mmpretrain.losses import ClipLoss, NextTokenLoss, SigLipLoss, all_gather_rows
from mmpretrain.losses.language_model import prior_token_weights

WORLD_SIZE, DIM = 2, 6
SPLITS = {"3+5": (3, 5), "0+4": (0, 4)}
LOSSES = {"clip_local": lambda: ClipLoss(local_loss=True),
          "clip_full": lambda: ClipLoss(local_loss=False),
          "clip_smoothed": lambda: ClipLoss(label_smoothing=0.1),
          "siglip": SigLipLoss}


def _features(rows: int):
    gen = torch.Generator().manual_seed(rows)
    image = F.normalize(torch.randn(rows, DIM, generator=gen, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(rows, DIM, generator=gen, dtype=torch.float64), dim=-1)
    return image, text


def _scale_and_bias():
    log_scale = torch.tensor(math.log(10.0), dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-2.0, dtype=torch.float64, requires_grad=True)
    return log_scale, bias


def _run(loss_name: str, image, text):
    log_scale, bias = _scale_and_bias()
    image, text = image.clone().requires_grad_(), text.clone().requires_grad_()
    loss = LOSSES[loss_name]()(image, text, log_scale.exp(), bias)
    loss.backward()
    return {"loss": loss.detach(), "image": image.grad, "text": text.grad,
            "scale": log_scale.grad, "bias": bias.grad}


VOCAB = 7


def _tokens(count: int):
    gen = torch.Generator().manual_seed(100 + count)
    return (torch.randn(count, VOCAB, generator=gen, dtype=torch.float64),
            torch.randint(0, VOCAB, (count,), generator=gen),
            torch.randn(count, VOCAB, generator=gen, dtype=torch.float64))


def _run_lm(logits, targets, reference_logits, weighted: bool):
    logits = logits.clone().requires_grad_()
    weights = prior_token_weights(reference_logits, targets, 1.0, 3.0) if weighted else None
    loss = NextTokenLoss(label_smoothing=0.1)(logits, targets, weights)
    loss.backward()
    return {"loss": loss.detach(), "logits": logits.grad}


def _rank_worker(rank: int, init_file: str, result_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        results = {}
        for split_name, split in SPLITS.items():
            image_all, text_all = _features(sum(split))
            rows = slice(sum(split[:rank]), sum(split[:rank + 1]))
            for loss_name in LOSSES:
                results[f"{split_name}/{loss_name}"] = _run(loss_name, image_all[rows], text_all[rows])
            gathered, offset = gather_uneven(image_all[rows])
            results[f"{split_name}/eval_gather"] = {"gathered": gathered, "offset": torch.tensor(offset)}
            local = image_all[rows].clone().requires_grad_()
            all_gather_rows(local, with_grad=False)[0].pow(2).sum().backward()
            results[f"{split_name}/local_grad_only"] = {"grad": local.grad}
            logits, targets, reference = (t[rows] for t in _tokens(sum(split)))
            for weighted in (False, True):
                results[f"{split_name}/lm-{weighted}"] = _run_lm(logits, targets, reference, weighted)
        torch.save(results, f"{result_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def per_rank(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uneven_ranks")
    mp.start_processes(_rank_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD_SIZE,
                       start_method="spawn")
    return [torch.load(tmp / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]


@pytest.mark.parametrize("split_name", SPLITS)
@pytest.mark.parametrize("loss_name", LOSSES)
def test_uneven_ranks_equal_one_process(per_rank, split_name, loss_name):
    split = SPLITS[split_name]
    reference = _run(loss_name, *_features(sum(split)))
    results = [r[f"{split_name}/{loss_name}"] for r in per_rank]
    torch.testing.assert_close(torch.stack([r["loss"] for r in results]).mean(), reference["loss"])
    for name in ("scale", "bias"):
        torch.testing.assert_close(torch.stack([r[name] for r in results]).mean(), reference[name])
    for rank, result in enumerate(results):
        rows = slice(sum(split[:rank]), sum(split[:rank + 1]))
        for name in ("image", "text"):
            torch.testing.assert_close(result[name] / WORLD_SIZE, reference[name][rows])


@pytest.mark.parametrize("split_name", SPLITS)
def test_eval_gather_and_local_grad_only(per_rank, split_name):
    split = SPLITS[split_name]
    image_all, _ = _features(sum(split))
    for rank, results in enumerate(per_rank):
        gathered = results[f"{split_name}/eval_gather"]
        torch.testing.assert_close(gathered["gathered"], image_all)
        assert int(gathered["offset"]) == sum(split[:rank])
        rows = slice(sum(split[:rank]), sum(split[:rank + 1]))
        torch.testing.assert_close(results[f"{split_name}/local_grad_only"]["grad"], 2 * image_all[rows])


@pytest.mark.parametrize("split_name", SPLITS)
@pytest.mark.parametrize("weighted", [False, True])
def test_next_token_loss_over_uneven_token_counts_equals_one_process(per_rank, split_name, weighted):
    split = SPLITS[split_name]
    reference = _run_lm(*_tokens(sum(split)), weighted)
    results = [r[f"{split_name}/lm-{weighted}"] for r in per_rank]
    torch.testing.assert_close(torch.stack([r["loss"] for r in results]).mean(), reference["loss"])
    for rank, result in enumerate(results):
        rows = slice(sum(split[:rank]), sum(split[:rank + 1]))
        torch.testing.assert_close(result["logits"] / WORLD_SIZE, reference["logits"][rows])
