"""Elastic weight consolidation (Kirkpatrick et al. 2017) with a diagonal Fisher.

penalty = (lambda / 2) sum_i F_i (theta_i - theta*_i)^2, with theta* the weights at the end of
the last task and F the diagonal Fisher, estimated as the squared gradient of the *mean batch
loss*, averaged over the batches it was accumulated on: F_i = mean_b (d L_b / d theta_i)^2.
This is not the per-sample empirical Fisher mean_n (d l_n / d theta_i)^2: squaring a batch
mean keeps E[g]^2 but only Var[g] / B of the per-sample spread, so where per-sample gradients
disagree F is up to B times smaller, and lambda is larger than with a per-sample Fisher
(per-sample gradients would cost B backward passes, or a vmap over the towers, per step).
Under DDP the gradient seen after backward is already averaged over ranks, so F is that of
the global batch's mean loss and identical on every rank. Over a stream
the Fisher accumulates online: F <- decay F + F_t (decay 1 = sum over tasks, as in EWC with
one penalty per task sharing an anchor; < 1 = online EWC of Schwarz et al. 2018).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn


class EWC:
    """Usage per task: add ``penalty(model)`` to the loss (zero during the first task), after
    each backward ``accumulate(model, penalty_in_grad=True)``, at the task's end
    ``consolidate(model)``."""

    def __init__(self, weight: float = 1.0, decay: float = 1.0) -> None:
        if weight < 0:
            raise ValueError(f"ewc.weight (lambda) must be >= 0, got {weight}")
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"ewc.decay must be in [0, 1], got {decay}")
        self.weight = weight
        self.decay = decay
        self.fisher: dict[str, Tensor] = {}
        self.anchor: dict[str, Tensor] = {}
        self.squared_grads: dict[str, Tensor] = {}
        self.batches = 0

    @torch.no_grad()
    def accumulate(self, model: nn.Module, penalty_in_grad: bool = False) -> None:
        """Add the current gradients' squares (trainable parameters that have a gradient).

        ``penalty_in_grad``: the gradients are of a loss that includes :meth:`penalty`; its
        exact gradient lambda F (theta - theta*) is taken out first, so the Fisher measures
        the task loss alone without a second backward pass."""
        for name, param in model.named_parameters():
            if not param.requires_grad or param.grad is None:
                continue
            grad = param.grad.detach().float()
            if penalty_in_grad and name in self.anchor:
                self._follow_device(name, param.device)
                grad = grad - self.weight * self.fisher[name] * (param.float() - self.anchor[name])
            squared = grad.square()
            if name in self.squared_grads:
                # a resumed accumulator may still sit on the checkpoint's map_location
                self.squared_grads[name] = self.squared_grads[name].to(squared.device)
                self.squared_grads[name].add_(squared)
            else:
                self.squared_grads[name] = squared
        self.batches += 1

    def _follow_device(self, name: str, device: torch.device) -> None:
        """Move a restored anchor / Fisher entry to its parameter's device (once)."""
        if self.anchor[name].device != device:
            self.anchor[name] = self.anchor[name].to(device)
            self.fisher[name] = self.fisher[name].to(device)

    @torch.no_grad()
    def consolidate(self, model: nn.Module) -> None:
        """End of a task: fold its Fisher into the running one and anchor at the current weights."""
        if self.batches == 0:
            raise RuntimeError("EWC.consolidate: no gradients were accumulated during the task "
                               "(call accumulate(model) after backward)")
        for name, total in self.squared_grads.items():
            fisher_t = total / self.batches
            previous = self.fisher.get(name)
            previous = None if previous is None else previous.to(fisher_t.device)
            self.fisher[name] = fisher_t if previous is None else self.decay * previous + fisher_t
        params = dict(model.named_parameters())
        self.anchor = {name: params[name].detach().float().clone() for name in self.fisher}
        self.squared_grads = {}
        self.batches = 0

    def penalty(self, model: nn.Module) -> Tensor:
        """(lambda / 2) sum F (theta - theta*)^2; zero before the first consolidation."""
        params = dict(model.named_parameters())
        missing = [name for name in self.anchor if name not in params]
        if missing:
            raise ValueError(f"EWC.penalty: the model has no parameters {missing[:3]} that the "
                             "Fisher was estimated for (did its structure change?)")
        terms = []
        for name in self.anchor:
            self._follow_device(name, params[name].device)
            deviation = params[name].float() - self.anchor[name]
            terms.append((self.fisher[name] * deviation.square()).sum())
        if not terms:
            return next(model.parameters()).new_zeros(())
        return 0.5 * self.weight * torch.stack(terms).sum()

    def state_dict(self) -> dict[str, dict[str, Tensor] | Tensor]:
        """Tensors only (loads with ``torch.load(weights_only=True)``)."""
        return {"fisher": self.fisher, "anchor": self.anchor,
                "squared_grads": self.squared_grads,
                "batches": torch.tensor(self.batches, dtype=torch.long)}

    def load_state_dict(self, state: Mapping[str, Mapping[str, Tensor] | Tensor]) -> None:
        self.fisher = dict(state["fisher"])
        self.anchor = dict(state["anchor"])
        self.squared_grads = dict(state["squared_grads"])
        self.batches = int(state["batches"])
