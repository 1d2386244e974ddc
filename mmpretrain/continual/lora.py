"""LoRA (Hu et al. 2021) on a model's linear maps, mergeable back into plain weights.

Every adapted map computes W + (alpha/r) B A (A [r, in], B [out, r]; B = 0 at start, so the
adapted model computes exactly what the base model did). Two ways to attach it:

- an ``nn.Linear`` called as a module (MLP ``c_fc``/``c_proj``, our attention's
  ``out_proj``, timm's ``qkv``) becomes :class:`LoRALinear`: it keeps ``weight``/``bias``
  under their names, adds ``lora_A``/``lora_B``, and dropout acts on the adapter's input.
- a weight that its owner reads directly: the fused ``in_proj_weight`` Parameter of our
  ``MultiheadSelfAttention`` and of ``torch.nn.MultiheadAttention`` (open_clip's layout, used
  through ``F.linear``), and ``torch.nn.MultiheadAttention.out_proj.weight`` (read by
  ``F.multi_head_attention_forward`` without calling the module). Its owner gets a
  :class:`WeightLoRA` submodule ``<weight>_lora`` and reading the weight attribute yields
  W + delta; the Parameter keeps its state-dict key.

:func:`merge_lora` folds every adapter into its weight and restores plain modules, so the
state dict is the original layout again (``mmpretrain export`` and open_clip load it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FUSED_WEIGHT_NAME = "in_proj_weight"


def _factors(out_features: int, in_features: int, rank: int, device: torch.device | None,
             dtype: torch.dtype | None) -> tuple[nn.Parameter, nn.Parameter]:
    """(A [rank, in], B [out, rank]); as in the LoRA reference code A is initialised like a
    Linear layer's weight and B is zero."""
    lora_A = nn.Parameter(torch.empty(rank, in_features, device=device, dtype=dtype))
    lora_B = nn.Parameter(torch.zeros(out_features, rank, device=device, dtype=dtype))
    nn.init.kaiming_uniform_(lora_A, a=math.sqrt(5))
    return lora_A, lora_B


class LoRALinear(nn.Linear):
    """``nn.Linear`` plus a rank-``rank`` adapter scaled by ``alpha / rank``."""

    def __init__(self, in_features: int, out_features: int, rank: int = 8, alpha: float = 16.0,
                 dropout: float = 0.0, bias: bool = True, device: torch.device | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.rank = rank
        self.scaling = alpha / rank
        self.lora_dropout = nn.Dropout(dropout)
        self.lora_A, self.lora_B = _factors(out_features, in_features, rank, device, dtype)

    @classmethod
    def from_linear(cls, base: nn.Linear, rank: int, alpha: float,
                    dropout: float = 0.0) -> LoRALinear:
        """Wrap ``base`` sharing its weight and bias Parameters (no copy of the base weights)."""
        lora = cls(base.in_features, base.out_features, rank, alpha, dropout,
                   bias=base.bias is not None, device=torch.device("meta"))
        lora.weight, lora.bias = base.weight, base.bias
        lora.lora_A, lora.lora_B = _factors(base.out_features, base.in_features, rank,
                                            base.weight.device, base.weight.dtype)
        return lora

    def delta_weight(self) -> Tensor:
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: Tensor) -> Tensor:
        adapter = F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B)
        return super().forward(x) + self.scaling * adapter

    @torch.no_grad()
    def merged_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing the same map (W + delta), adapters dropped."""
        plain = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                          device=torch.device("meta"))
        merged = self.weight.float() + self.delta_weight().float()
        plain.weight = nn.Parameter(merged.to(self.weight.dtype),
                                    requires_grad=self.weight.requires_grad)
        plain.bias = self.bias
        return plain

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, scaling={self.scaling:g}"


class WeightLoRA(nn.Module):
    """The adapter of a directly read weight: delta = (alpha/r) B A."""

    def __init__(self, out_features: int, in_features: int, rank: int = 8, alpha: float = 16.0,
                 device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.rank = rank
        self.scaling = alpha / rank
        self.lora_A, self.lora_B = _factors(out_features, in_features, rank, device, dtype)

    def delta_weight(self) -> Tensor:
        return self.scaling * (self.lora_B @ self.lora_A)


_WEIGHT_LORA_CLASSES: dict[tuple[type, str], type] = {}


def _weight_lora_class(base: type, weight_name: str) -> type:
    """``base`` whose ``weight_name`` attribute reads W + delta while the Parameter stays in
    ``_parameters`` under its own name. One class per (base, weight), created once, so deep
    copies of an adapted model stay independent (``torch.nn.utils.parametrize`` shares its
    generated class between copies and edits it when one copy is un-parametrized)."""
    key = (base, weight_name)
    if key not in _WEIGHT_LORA_CLASSES:
        def adapted_weight(module: nn.Module) -> Tensor:
            delta = getattr(module, f"{weight_name}_lora").delta_weight()
            return module._parameters[weight_name] + delta

        _WEIGHT_LORA_CLASSES[key] = type(f"LoRA{base.__name__}", (base,), {
            weight_name: property(adapted_weight), "lora_base_class": base,
            "lora_weight_name": weight_name, "__module__": __name__})
    return _WEIGHT_LORA_CLASSES[key]


def _has_weight_lora(module: nn.Module) -> bool:
    return type(module) in _WEIGHT_LORA_CLASSES.values()


def _matches(name: str, targets: Sequence[str]) -> bool:
    """A target is a dotted part of the qualified name: 'mlp', 'attn', 'visual.transformer'."""
    dotted = f".{name}."
    return any(f".{target.strip('.')}." in dotted for target in targets)


def _adaptable(model: nn.Module) -> list[tuple[str, nn.Module, str | None]]:
    """(reported name, owning module, directly read weight name or None for a LoRALinear)."""
    found: list[tuple[str, nn.Module, str | None]] = []
    read_directly: set[int] = set()
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear) or _has_weight_lora(module):
            raise ValueError(f"apply_lora: {name or 'the model'} already carries LoRA adapters; "
                             "merge_lora first")
        if isinstance(module, nn.MultiheadAttention):
            read_directly.add(id(module.out_proj))
        if isinstance(module, nn.Linear):
            found.append((name, module, "weight" if id(module) in read_directly else None))
        weight = module._parameters.get(FUSED_WEIGHT_NAME)
        if weight is not None and weight.ndim == 2:
            found.append((f"{name}.{FUSED_WEIGHT_NAME}" if name else FUSED_WEIGHT_NAME,
                          module, FUSED_WEIGHT_NAME))
    return found


def _replace_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def apply_lora(model: nn.Module, rank: int, alpha: float, targets: Sequence[str],
               dropout: float = 0.0) -> list[str]:
    """Add adapters to every linear map whose qualified name contains one of ``targets`` as a
    dotted part; freeze every other parameter. Returns the adapted names."""
    if rank < 1:
        raise ValueError(f"lora rank must be >= 1, got {rank}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"lora dropout must be in [0, 1), got {dropout}")
    if not targets:
        raise ValueError("lora targets must name at least one module pattern, e.g. ['attn', 'mlp']")
    candidates = _adaptable(model)
    selected = [entry for entry in candidates if _matches(entry[0], targets)]
    unused = [t for t in targets if not any(_matches(name, [t]) for name, _, _ in candidates)]
    if unused:
        raise ValueError(f"lora targets {unused} match no nn.Linear or {FUSED_WEIGHT_NAME} in "
                         f"{type(model).__name__}; adaptable names look like "
                         f"{[name for name, _, _ in candidates[:4]]}")
    read_directly = [name for name, _, weight_name in selected if weight_name is not None]
    if dropout > 0 and read_directly:
        raise ValueError(f"lora dropout acts on an adapter's input, which weights read directly "
                         f"by attention (e.g. {read_directly[0]}) never expose; use dropout 0 or "
                         "targets that select only nn.Linear layers (e.g. 'mlp')")
    for param in model.parameters():
        param.requires_grad_(False)
    for name, module, weight_name in selected:
        if weight_name is None:
            _replace_submodule(model, name, LoRALinear.from_linear(module, rank, alpha, dropout))
            continue
        weight = module._parameters[weight_name]
        module.add_module(f"{weight_name}_lora", WeightLoRA(
            weight.shape[0], weight.shape[1], rank, alpha, device=weight.device,
            dtype=weight.dtype))
        module.__class__ = _weight_lora_class(type(module), weight_name)
    return [name for name, _, _ in selected]


def lora_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The adapters' (name, parameter) pairs."""
    return [(name, param) for name, param in model.named_parameters()
            if name.rsplit(".", 1)[-1] in ("lora_A", "lora_B")]


@torch.no_grad()
def merge_lora(model: nn.Module) -> None:
    """Fold every adapter into its weight; the model is plain again (original state-dict keys)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            _replace_submodule(model, name, module.merged_linear())
        elif _has_weight_lora(module):
            weight_name = module.lora_weight_name
            weight = module._parameters[weight_name]
            adapter = getattr(module, f"{weight_name}_lora")
            merged = weight.float() + adapter.delta_weight().float()
            # same dict slot, so the state dict keeps its key order
            module._parameters[weight_name] = nn.Parameter(
                merged.to(weight.dtype), requires_grad=weight.requires_grad)
            delattr(module, f"{weight_name}_lora")
            module.__class__ = module.lora_base_class
