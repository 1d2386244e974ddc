"""The temperature is clamped in place after the optimizer step (open_clip), not in forward:
past ln(100) it still gets a gradient, is put back to ln(100) by the step, and comes back
down when the loss asks for a softer temperature."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmpretrain.losses import ClipLoss
from mmpretrain.models import create_clip
from mmpretrain.tasks import ContrastiveTask
from mmpretrain.tasks.interleaved import InterleavedTask
from tests.distributed.fsdp2_cases import _interleaved

CEILING = math.log(100.0)


def _features(aligned: bool) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    # all features near one direction, each pair a little closer: logits at a scale of ~165
    # stay unsaturated. Aligned pairs: a sharper softmax lowers the loss; shifted: raises it
    common = torch.randn(1, 16, generator=gen)
    own = torch.randn(6, 16, generator=gen)
    image = F.normalize(common + 0.1 * own, dim=-1)
    text = F.normalize(common + 0.1 * own + 0.05 * torch.randn(6, 16, generator=gen), dim=-1)
    return image, text if aligned else text.roll(1, dims=0)


def _scale(model) -> torch.Tensor:
    """What the task's loss multiplies the logits by: the model's forward value for CLIP
    (`scale()`), `exp(logit_scale)` as InterleavedTask._contrastive computes it."""
    return model.scale() if hasattr(model, "scale") else model.logit_scale.exp()


def _drive(task, logit_scale: torch.nn.Parameter, optimizer, aligned: bool, batch_idx: int) -> float:
    def closure():
        optimizer.zero_grad()
        image, text = _features(aligned)
        loss = ClipLoss()(image, text, _scale(task.model))
        loss.backward()
        return loss
    task.optimizer_step(0, batch_idx, optimizer, closure)
    return float(logit_scale.grad)


@pytest.mark.parametrize("family", ["contrastive", "interleaved"])
def test_logit_scale_past_the_ceiling_is_clamped_after_the_step_and_comes_back(family):
    if family == "contrastive":
        model = create_clip("tiny", attn_backend="sdpa", vision_cfg={"layers": 1},
                            text_cfg={"layers": 1})
        task = ContrastiveTask(model)
    else:
        model = _interleaved()
        task = InterleavedTask(model)
    with torch.no_grad():
        model.logit_scale.fill_(CEILING + 0.5)
    # the forward is not clamped: exp(logit_scale) is 100 * e^0.5
    assert float(model.logit_scale.detach().exp()) == pytest.approx(100 * math.exp(0.5), rel=1e-5)
    optimizer = torch.optim.SGD([model.logit_scale], lr=0.5)
    grad = _drive(task, model.logit_scale, optimizer, aligned=True, batch_idx=0)
    assert grad < 0  # the gradient still flows past ln(100) (a forward clamp would zero it)
    assert float(model.logit_scale) == pytest.approx(CEILING, abs=1e-6)  # put back by the step
    grad = _drive(task, model.logit_scale, optimizer, aligned=False, batch_idx=1)
    assert grad > 0 and float(model.logit_scale) < CEILING - 1e-3  # and it comes back down


def test_siglip_temperature_is_not_clamped():
    model = create_clip("tiny", attn_backend="sdpa", max_logit_scale=None,
                        init_logit_scale=math.log(10), init_logit_bias=-10.0,
                        vision_cfg={"layers": 1}, text_cfg={"layers": 1})
    task = ContrastiveTask(model)
    with torch.no_grad():
        model.logit_scale.fill_(CEILING + 0.5)
    optimizer = torch.optim.SGD([model.logit_scale], lr=0.5)
    _drive(task, model.logit_scale, optimizer, aligned=True, batch_idx=0)
    assert float(model.logit_scale) > CEILING + 0.5
