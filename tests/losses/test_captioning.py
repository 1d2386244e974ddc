"""CoCaLoss: caption CE over non-padding tokens (hand-computed), weights, open_clip's CoCaLoss,
packed == padded logits, and the exact global token mean across 2 gloo ranks."""

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from mmpretrain.losses import ClipLoss, CoCaLoss

WORLD_SIZE, LOCAL_BATCH, LENGTH, VOCAB, DIM = 2, 2, 5, 7, 8
# rank 0 holds 3 + 1 label tokens, rank 1 holds 5 + 4: a per-rank mean would weight them unequally
LABELS = torch.tensor([[3, 5, 1, 0, 0], [2, 0, 0, 0, 0], [1, 2, 3, 4, 6], [6, 6, 2, 1, 0]])


def _inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    batch = LABELS.shape[0]
    image = F.normalize(torch.randn(batch, DIM, generator=gen, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(batch, DIM, generator=gen, dtype=torch.float64), dim=-1)
    logits = torch.randn(batch, LENGTH, VOCAB, generator=gen, dtype=torch.float64)
    return image, text, logits


def _hand_caption_ce(logits, labels, pad_id=0):
    """-log softmax(logits)[label], averaged over the non-padding labels, one token at a time."""
    total, count = 0.0, 0
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            label = int(labels[b, t])
            if label == pad_id:
                continue
            row = logits[b, t]
            total += math.log(sum(math.exp(v) for v in row.tolist())) - float(row[label])
            count += 1
    return total / count


def test_caption_term_is_hand_computed_ce_over_non_padding_tokens():
    image, text, logits = _inputs()
    scale = torch.tensor(10.0, dtype=torch.float64)
    loss = CoCaLoss(clip_loss_weight=1.0, caption_loss_weight=2.0)
    terms = loss.terms(image, text, scale, None, logits, LABELS)
    assert terms["caption_loss"].item() == pytest.approx(_hand_caption_ce(logits, LABELS), rel=1e-9)
    torch.testing.assert_close(terms["contrastive_loss"], ClipLoss()(image, text, scale))
    total = loss(image, text, scale, caption_logits=logits, caption_labels=LABELS)
    torch.testing.assert_close(total, terms["contrastive_loss"] + 2.0 * terms["caption_loss"])

    perturbed = logits.clone()
    perturbed[LABELS == 0] = 1e3  # logits at padding positions must not matter
    perturbed_terms = loss.terms(image, text, scale, None, perturbed, LABELS)
    torch.testing.assert_close(perturbed_terms["caption_loss"], terms["caption_loss"])
    is_label = LABELS != 0  # packed rows (what CoCa(pack_caption_logits=True) returns)
    torch.testing.assert_close(loss.caption_loss(logits[is_label], LABELS[is_label]),
                               terms["caption_loss"])


def test_matches_open_clip_coca_loss():
    from open_clip.loss import CoCaLoss as OpenClipCoCaLoss  # not at the top: spawned workers

    image, text, logits = _inputs(1)
    scale = torch.tensor(20.0, dtype=torch.float64)
    expected_clip, expected_caption = OpenClipCoCaLoss(caption_loss_weight=2.0,
                                                       clip_loss_weight=0.5)(
        image, text, logits, LABELS, scale)
    got = CoCaLoss(clip_loss_weight=0.5, caption_loss_weight=2.0)(
        image, text, scale, caption_logits=logits, caption_labels=LABELS)
    torch.testing.assert_close(got, expected_clip + expected_caption)


def test_bad_inputs_raise():
    image, text, logits = _inputs()
    with pytest.raises(ValueError, match="disagree"):
        CoCaLoss().caption_loss(logits[:, :-1], LABELS)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        CoCaLoss(caption_loss_weight=-1.0)


def _rank_worker(rank: int, init_file: str, result_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=WORLD_SIZE)
    try:
        image, text, logits = _inputs()
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        local_logits = logits[rows].clone().requires_grad_()
        loss = CoCaLoss()(image[rows], text[rows], torch.tensor(10.0, dtype=torch.float64),
                          caption_logits=local_logits, caption_labels=LABELS[rows])
        loss.backward()
        torch.save({"loss": loss.detach(), "logits_grad": local_logits.grad},
                   f"{result_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_equal_single_process_on_concatenated_batch(tmp_path):
    mp.start_processes(_rank_worker, args=(str(tmp_path / "init"), str(tmp_path)),
                       nprocs=WORLD_SIZE, start_method="spawn")
    per_rank = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    image, text, logits = _inputs()
    logits.requires_grad_()
    full = CoCaLoss()(image, text, torch.tensor(10.0, dtype=torch.float64),
                      caption_logits=logits, caption_labels=LABELS)
    full.backward()
    # DDP averages losses and gradients over ranks
    torch.testing.assert_close(torch.stack([r["loss"] for r in per_rank]).mean(), full.detach())
    for rank, result in enumerate(per_rank):
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        torch.testing.assert_close(result["logits_grad"] / WORLD_SIZE, logits.grad[rows])
