"""EWC: Fisher and penalty arithmetic by hand, online decay, checkpoint round trip, and less
forgetting of a first regression task when the penalty is on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmpretrain.continual.ewc import EWC


def _model(values: list[float]) -> nn.Linear:
    model = nn.Linear(len(values), 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([values]))
    return model


def _accumulate(ewc: EWC, model: nn.Linear, grads: list[list[float]]) -> None:
    for grad in grads:
        model.weight.grad = torch.tensor([grad])
        ewc.accumulate(model)


def test_fisher_is_mean_squared_gradient_and_penalty_matches_formula():
    model, ewc = _model([0.0, 0.0]), EWC(weight=2.0)
    assert ewc.penalty(model).item() == 0.0  # nothing consolidated yet
    _accumulate(ewc, model, [[1.0, 2.0], [3.0, 4.0]])
    ewc.consolidate(model)
    torch.testing.assert_close(ewc.fisher["weight"], torch.tensor([[5.0, 10.0]]))
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
    model.weight.grad = None
    penalty = ewc.penalty(model)  # 2/2 * (5 * 1 + 10 * 4)
    assert penalty.item() == pytest.approx(45.0)
    penalty.backward()  # d/dtheta = lambda F (theta - theta*)
    torch.testing.assert_close(model.weight.grad, torch.tensor([[10.0, -40.0]]))


def test_online_decay_and_reanchoring():
    model, ewc = _model([0.0]), EWC(decay=0.5)
    _accumulate(ewc, model, [[2.0]])
    ewc.consolidate(model)
    with torch.no_grad():
        model.weight.fill_(3.0)
    _accumulate(ewc, model, [[1.0], [3.0]])
    ewc.consolidate(model)  # 0.5 * 4 + (1 + 9) / 2
    assert ewc.fisher["weight"].item() == pytest.approx(7.0)
    assert ewc.anchor["weight"].item() == 3.0
    with pytest.raises(RuntimeError, match="no gradients were accumulated"):
        ewc.consolidate(model)


def test_state_round_trips_through_weights_only_checkpoint(tmp_path):
    model, ewc = _model([1.0, 2.0]), EWC()
    _accumulate(ewc, model, [[1.0, 1.0]])
    ewc.consolidate(model)
    _accumulate(ewc, model, [[2.0, 0.0]])  # mid-task accumulation is resumed too
    torch.save(ewc.state_dict(), tmp_path / "ewc.pt")
    resumed = EWC()
    resumed.load_state_dict(torch.load(tmp_path / "ewc.pt", weights_only=True))
    assert resumed.batches == 1
    with torch.no_grad():
        model.weight.add_(1.0)
    assert resumed.penalty(model).item() == pytest.approx(ewc.penalty(model).item())


def _train(model: nn.Linear, inputs: torch.Tensor, targets: torch.Tensor, steps: int,
           ewc: EWC | None = None, collect: bool = False) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(steps):
        batch = slice(8 * (step % 8), 8 * (step % 8) + 8)
        loss = (model(inputs[batch]).squeeze(-1) - targets[batch]).square().mean()
        optimizer.zero_grad()
        loss.backward()
        if collect:
            ewc.accumulate(model)
        if ewc is not None and not collect:
            ewc.penalty(model).backward()
        optimizer.step()


def test_penalty_reduces_forgetting_of_the_first_task():
    gen = torch.Generator().manual_seed(0)
    shared = torch.randn(64, 1, generator=gen)
    task_a = (torch.cat([shared, shared], 1), 2.0 * shared.squeeze(-1))  # w1 + w2 = 2
    only_first = torch.randn(64, 1, generator=gen)
    task_b = (torch.cat([only_first, torch.zeros_like(only_first)], 1),
              3.0 * only_first.squeeze(-1))  # w1 = 3

    def task_a_loss(model):
        with torch.no_grad():
            return (model(task_a[0]).squeeze(-1) - task_a[1]).square().mean().item()

    forgetting = {}
    for use_ewc in (False, True):
        model, ewc = _model([0.0, 0.0]), EWC(weight=5.0)
        _train(model, *task_a, steps=60, ewc=ewc, collect=True)
        ewc.consolidate(model)
        after_a = task_a_loss(model)
        _train(model, *task_b, steps=60, ewc=ewc if use_ewc else None)
        forgetting[use_ewc] = task_a_loss(model) - after_a
    assert forgetting[False] > 0.5
    assert forgetting[True] < 0.25 * forgetting[False]


def test_accumulate_removes_the_penalty_gradient():
    torch.manual_seed(0)
    inputs, targets = torch.randn(8, 3), torch.randn(8)
    model, ewc = nn.Linear(3, 1), EWC(weight=3.0)
    model.weight.grad = torch.ones(1, 3)
    model.bias.grad = torch.ones(1)
    ewc.accumulate(model)
    ewc.consolidate(model)
    with torch.no_grad():
        model.weight.add_(0.5)

    def task_loss():
        return (model(inputs).squeeze(-1) - targets).square().mean()

    model.zero_grad()
    task_loss().backward()
    task_only = EWC(weight=3.0)
    task_only.accumulate(model)
    model.zero_grad()
    (task_loss() + ewc.penalty(model)).backward()
    assert ewc.penalty(model).item() > 0
    ewc.accumulate(model, penalty_in_grad=True)
    for name, squared in task_only.squared_grads.items():
        torch.testing.assert_close(ewc.squared_grads[name], squared)
