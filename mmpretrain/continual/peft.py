"""Which parameters a continual run updates: full fine-tuning or a parameter-efficient mode.

Applied once after the starting weights are loaded (and before the optimizer is built); it
decides every ``requires_grad`` itself, overriding locks set at construction (``CLIP``'s
``lock_image``):

- ``full``: everything trains.
- ``lora``: adapters on the ``lora_targets`` linears (continual/lora.py), all else frozen.
- ``norm_bias``: only norm-layer affine parameters and biases (LayerNorm + BitFit tuning).
- ``lock_image`` / ``lock_text``: LiT-style; the tower's ``lock`` (models/locking.py) freezes
  it except its last ``unlocked_blocks`` blocks, the other tower trains fully.

``train_logit_scale`` keeps the temperature (and SigLIP bias) trainable in the restricted
modes; ``full`` always trains it.
"""

from __future__ import annotations

from typing import Literal, get_args

from torch import nn

from mmpretrain.continual.lora import apply_lora, merge_lora

TrainableMode = Literal["full", "lora", "norm_bias", "lock_image", "lock_text"]
TRAINABLE_MODES: tuple[str, ...] = get_args(TrainableMode)
_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)
_TEMPERATURE = ("logit_scale", "logit_bias")


def _norm_and_bias_names(model: nn.Module) -> set[str]:
    names = set()
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for param_name, _ in module.named_parameters(recurse=False):
            if isinstance(module, _NORMS) or param_name.endswith("bias"):
                names.add(prefix + param_name)
    return names


class TrainableParameters:
    """A typed PEFT choice; :meth:`apply` sets ``requires_grad`` on a loaded model."""

    def __init__(
        self,
        mode: TrainableMode = "full",
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        lora_targets: list[str] | None = None,
        lora_dropout: float = 0.0,
        unlocked_blocks: int = 0,
        freeze_norms: bool = True,
        train_logit_scale: bool = True,
    ) -> None:
        """``lora_targets`` default ``["attn", "mlp"]`` (every attention and MLP linear);
        ``unlocked_blocks``/``freeze_norms`` are the locked tower's (``lock_*`` modes)."""
        if mode not in TRAINABLE_MODES:
            raise ValueError(f"peft.mode must be one of {TRAINABLE_MODES}, got {mode!r}")
        self.mode = mode
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.lora_targets = list(lora_targets) if lora_targets is not None else ["attn", "mlp"]
        self.lora_dropout = lora_dropout
        self.unlocked_blocks = unlocked_blocks
        self.freeze_norms = freeze_norms
        self.train_logit_scale = train_logit_scale

    def apply(self, model: nn.Module) -> list[str]:
        """Configure ``model`` in place; returns the names of its trainable parameters."""
        for param in model.parameters():
            param.requires_grad_(True)
        if self.mode == "lora":
            apply_lora(model, self.lora_rank, self.lora_alpha, self.lora_targets,
                       self.lora_dropout)
        elif self.mode == "norm_bias":
            keep = _norm_and_bias_names(model)
            for name, param in model.named_parameters():
                param.requires_grad_(name in keep)
        elif self.mode in ("lock_image", "lock_text"):
            tower_name = "visual" if self.mode == "lock_image" else "text"
            tower = getattr(model, tower_name, None)
            if not callable(getattr(tower, "lock", None)):
                raise ValueError(f"peft.mode={self.mode}: the model's {tower_name!r} tower has "
                                 "no lock(unlocked_blocks, freeze_norms) method")
            tower.lock(self.unlocked_blocks, self.freeze_norms)
        if self.mode != "full":
            for name, param in model.named_parameters():
                if name in _TEMPERATURE:
                    param.requires_grad_(self.train_logit_scale)
        trainable = [name for name, param in model.named_parameters() if param.requires_grad]
        if not trainable:
            raise ValueError(f"peft.mode={self.mode} left no trainable parameter in "
                             f"{type(model).__name__}")
        return trainable

    def merge(self, model: nn.Module) -> None:
        """Fold adapters into the weights (``lora``) so the model has its plain layout again;
        a no-op for the other modes."""
        if self.mode == "lora":
            merge_lora(model)
