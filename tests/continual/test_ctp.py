"""CTP blocks against straightforward loop-by-loop reference computations."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmpretrain.continual.ctp import (
    MomentumQueue,
    ctp_momentum_update,
    momentum_contrast_loss,
    topology_preservation_loss,
)
from mmpretrain.continual.lora import apply_lora


def _unit(batch: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(batch, dim, generator=gen), dim=-1)


def _reference_topology(img, txt, ref_img, ref_txt, tau, mask_self=True):
    """Row by row: KL(p_ref || p) with torch's kl_div, self-pairs dropped for i2i/t2t."""
    total = 0.0
    matrices = ((img, txt, ref_img, ref_txt, False), (txt, img, ref_txt, ref_img, False),
                (img, img, ref_img, ref_img, True), (txt, txt, ref_txt, ref_txt, True))
    for a, b, ra, rb, same in matrices:
        rows = []
        for i in range(a.shape[0]):
            cols = [j for j in range(b.shape[0]) if not (same and mask_self and j == i)]
            sim = torch.stack([a[i] @ b[j] for j in cols]) / tau
            ref = torch.stack([ra[i] @ rb[j] for j in cols]) / tau
            rows.append(F.kl_div(F.log_softmax(sim, 0), F.softmax(ref, 0), reduction="sum"))
        total = total + torch.stack(rows).mean()
    return total


def test_topology_loss_matches_reference_and_masks_self_pairs():
    img, txt, ref_img, ref_txt = (_unit(6, 8, seed) for seed in range(4))
    loss = topology_preservation_loss(img, txt, ref_img, ref_txt, tau=0.07)
    torch.testing.assert_close(loss, _reference_topology(img, txt, ref_img, ref_txt, 0.07))
    unmasked = _reference_topology(img, txt, ref_img, ref_txt, 0.07, mask_self=False)
    assert abs(loss.item() - unmasked.item()) > 1e-3  # the masking changes the value


def test_topology_loss_is_zero_for_identical_models_and_positive_otherwise():
    img, txt = _unit(5, 8, 0), _unit(5, 8, 1)
    assert topology_preservation_loss(img, txt, img.clone(), txt.clone()).item() == pytest.approx(
        0.0, abs=1e-6)
    assert topology_preservation_loss(img, txt, _unit(5, 8, 2), txt).item() > 0.0
    assert topology_preservation_loss(img[:1], txt[:1], img[:1], txt[:1]).item() == 0.0


def test_topology_loss_is_computed_in_float32_under_autocast():
    img, txt, ref_img, ref_txt = (_unit(6, 8, seed) for seed in range(4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = topology_preservation_loss(img, txt, ref_img, ref_txt)
        same = topology_preservation_loss(img, txt, img.clone(), txt.clone())
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, _reference_topology(img, txt, ref_img, ref_txt, 0.07))
    assert same.item() == pytest.approx(0.0, abs=1e-6)


def test_topology_loss_gradients_reach_only_the_trained_features():
    img, txt = _unit(4, 8, 0).requires_grad_(), _unit(4, 8, 1).requires_grad_()
    ref_img, ref_txt = _unit(4, 8, 2).requires_grad_(), _unit(4, 8, 3).requires_grad_()
    topology_preservation_loss(img, txt, ref_img, ref_txt).backward()
    assert img.grad.abs().sum() > 0 and txt.grad.abs().sum() > 0
    assert ref_img.grad is None and ref_txt.grad is None


def test_momentum_contrast_matches_explicit_infonce():
    img, txt, mom_img, mom_txt = (_unit(4, 8, seed) for seed in range(4))
    queue_img, queue_txt = _unit(3, 8, 10), _unit(3, 8, 11)
    scale = 10.0
    loss = momentum_contrast_loss(img, txt, mom_img, mom_txt, queue_img, queue_txt, scale)
    terms = []
    for online, keys_batch, keys_queue in ((img, mom_txt, queue_txt), (txt, mom_img, queue_img)):
        keys = list(keys_batch) + list(keys_queue)
        for i in range(4):
            logits = torch.stack([scale * online[i] @ k for k in keys])
            terms.append(-(logits[i] - torch.logsumexp(logits, 0)) / 4)
    torch.testing.assert_close(loss, 0.5 * torch.stack(terms).sum())
    # with an empty queue it is the plain symmetric CLIP loss against momentum features
    empty = torch.zeros(0, 8)
    clip = 0.5 * (F.cross_entropy(scale * img @ mom_txt.T, torch.arange(4))
                  + F.cross_entropy(scale * txt @ mom_img.T, torch.arange(4)))
    torch.testing.assert_close(
        momentum_contrast_loss(img, txt, mom_img, mom_txt, empty, empty, scale), clip)


def test_queue_fills_wraps_around_and_checkpoints():
    queue = MomentumQueue(dim=2, size=5)
    assert queue.features()[0].shape == (0, 2)
    items = torch.arange(16, dtype=torch.float32).view(8, 2)
    queue.enqueue(items[:3], -items[:3])
    assert torch.equal(queue.features()[0], items[:3])
    queue.enqueue(items[3:7], -items[3:7])  # items 3, 4 fill slots 3, 4; 5, 6 overwrite 0, 1
    img, txt = queue.features()
    assert torch.equal(img, items[[5, 6, 2, 3, 4]]) and torch.equal(txt, -img)
    assert (int(queue.ptr), int(queue.filled)) == (2, 5)
    restored = MomentumQueue(dim=2, size=5)
    restored.load_state_dict(queue.state_dict())
    assert torch.equal(restored.features()[0], img) and int(restored.ptr) == 2
    queue.enqueue(torch.arange(14.0).view(7, 2), torch.zeros(7, 2))  # more than the queue holds
    assert sorted(queue.features()[0][:, 0].tolist()) == [4.0, 6.0, 8.0, 10.0, 12.0]
    with pytest.raises(ValueError, match=r"expected two \[B, 2\]"):
        queue.enqueue(torch.zeros(2, 3), torch.zeros(2, 3))


def _linear(value: float) -> nn.Module:
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.fill_(value)
        layer.bias.fill_(value)
    return layer


def test_momentum_update_first_task_and_later_tasks():
    momentum, online = _linear(1.0), _linear(3.0)
    ctp_momentum_update(momentum, online, ref_model=None)  # 0.995*1 + 0.005*3
    torch.testing.assert_close(momentum.weight, torch.full((2, 2), 1.01))
    momentum, reference = _linear(1.0), _linear(5.0)
    ctp_momentum_update(momentum, online, reference)  # 0.9*1 + 0.05*3 + 0.05*5
    torch.testing.assert_close(momentum.bias, torch.full((2,), 1.3))
    ctp_momentum_update(momentum, online, None, m=0.5)
    torch.testing.assert_close(momentum.bias, torch.full((2,), 2.15))
    assert online.weight.eq(3.0).all() and reference.weight.eq(5.0).all()
    untouched = momentum.bias.clone()
    with pytest.raises(ValueError, match="model and the momentum model differ in structure"):
        ctp_momentum_update(momentum, nn.Linear(2, 3), None)
    assert torch.equal(momentum.bias, untouched)  # checked before anything is modified


def test_momentum_update_follows_lora_adapters_of_a_deep_copy(tiny_clip):
    apply_lora(tiny_clip, rank=2, alpha=2.0, targets=["attn", "mlp"])
    momentum = copy.deepcopy(tiny_clip).requires_grad_(False)
    with torch.no_grad():
        for name, param in tiny_clip.named_parameters():
            if name.endswith("lora_B"):
                param.fill_(1.0)
    ctp_momentum_update(momentum, tiny_clip, None)
    adapters = momentum.visual.transformer.resblocks[0].attn.in_proj_weight_lora
    torch.testing.assert_close(adapters.lora_B, torch.full_like(adapters.lora_B, 0.005))
    torch.testing.assert_close(momentum.visual.proj, tiny_clip.visual.proj)  # equal weights stay
