"""Any timm image model as a CLIP image tower (open_clip ``TimmModel`` state-dict layout)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import timm
import torch
from timm.layers import Mlp
from timm.models import group_modules, group_parameters
from timm.utils import freeze
from torch import Tensor, nn

from mmpretrain.models.locking import lock_parameters


def load_weights_file(path: str | Path) -> dict[str, Tensor]:
    """A state dict from ``.safetensors`` or a torch file (``weights_only``; ``state_dict`` /
    ``model`` wrappers unwrapped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained_file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ValueError(f"pretrained_file {str(path)!r}: expected a state dict, got "
                         f"{type(state).__name__}")
    return state


class TimmVisionTower(nn.Module):
    """``trunk`` (a timm model built with ``pretrained=False``) + ``head`` (projection).

    ``pool``: the trunk's global pooling (``avg``, ``token``, ``max``, ... as the model
    supports; ``""`` keeps the model's default). ``proj``: ``linear`` / ``mlp`` head to
    ``output_dim``, or ``none`` when the trunk's ``num_features`` already equals it.
    ``pretrained_file``: local trunk weights (timm layout; the classifier is dropped).
    ``model_kwargs`` go to ``timm.create_model`` (e.g. ``img_size``, ``drop_path_rate``).
    """

    def __init__(
        self,
        model_name: str,
        output_dim: int = 512,
        pool: str = "",
        proj: Literal["linear", "mlp", "none"] = "linear",
        proj_bias: bool = False,
        drop: float = 0.0,
        pretrained_file: str | None = None,
        grad_checkpointing: bool = False,
        model_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__()
        if model_name not in timm.list_models():
            raise ValueError(f"TimmVisionTower: unknown timm model {model_name!r}")
        if proj not in ("linear", "mlp", "none"):
            raise ValueError(f"TimmVisionTower: proj must be linear, mlp or none, got {proj!r}")
        self.trunk = timm.create_model(model_name, pretrained=False, **(model_kwargs or {}))
        classifier = self.trunk.pretrained_cfg.get("classifier") or ()
        self.trunk.reset_classifier(0, **({"global_pool": pool} if pool else {}))
        if pretrained_file is not None:
            self._load_trunk(pretrained_file, classifier)
        features = self.trunk.num_features
        if proj == "none" and features != output_dim:
            raise ValueError(f"TimmVisionTower: proj='none' needs {model_name}.num_features "
                             f"({features}) == output_dim ({output_dim})")
        head: OrderedDict[str, nn.Module] = OrderedDict()
        if proj == "linear":
            head["drop"] = nn.Dropout(drop)
            head["proj"] = nn.Linear(features, output_dim, bias=proj_bias)
        elif proj == "mlp":
            head["mlp"] = Mlp(features, 2 * output_dim, output_dim, drop=(drop, 0.0),
                              bias=(True, proj_bias))
        self.head = nn.Sequential(head)
        self.output_dim = output_dim
        config = self.trunk.pretrained_cfg
        self.image_size = int(config.get("input_size", (3, 224, 224))[-1])
        if model_kwargs and "img_size" in model_kwargs:
            self.image_size = int(model_kwargs["img_size"])
        if grad_checkpointing:
            self.trunk.set_grad_checkpointing(True)

    def _load_trunk(self, path: str, classifier: str | tuple[str, ...]) -> None:
        # the file's classifier (any number of classes) is discarded: the tower has none
        classifiers = tuple(c + "." for c in ((classifier,) if isinstance(classifier, str)
                                              else classifier))
        state = {k: v for k, v in load_weights_file(path).items()
                 if not (classifiers and k.startswith(classifiers))}
        try:
            self.trunk.load_state_dict(state, strict=True)
        except RuntimeError as exn:
            raise ValueError(f"pretrained_file {path!r} does not match timm model "
                             f"{type(self.trunk).__name__}: {exn}") from exn

    def lock(self, unlocked_blocks: int = 0, freeze_norms: bool = True) -> None:
        """Freeze the trunk but its last ``unlocked_blocks`` layer groups (timm's
        ``group_matcher``); the head stays trainable when any block is unlocked. Frozen
        BatchNorms become ``FrozenBatchNorm2d`` (running statistics no longer update)."""
        groups = group_parameters(self.trunk, self.trunk.group_matcher())
        last_group = max(groups)
        if not 0 <= unlocked_blocks <= last_group:
            raise ValueError(f"lock: unlocked_blocks must be in [0, {last_group}] for this timm "
                             f"model, got {unlocked_blocks}")
        first_unlocked = last_group - unlocked_blocks + 1
        lock_parameters(self.trunk, [name for group in range(first_unlocked, last_group + 1)
                                     for name in groups[group]], freeze_norms=freeze_norms)
        for param in self.head.parameters():
            param.requires_grad = unlocked_blocks > 0
        if freeze_norms:
            module_groups = group_modules(self.trunk, self.trunk.group_matcher(), reverse=True)
            locked = [name for name, group in module_groups.items()
                      if group < first_unlocked]
            if locked:
                freeze(self.trunk, locked, include_bn_running_stats=True)

    def forward(self, image_B3HW: Tensor) -> Tensor:
        return self.head(self.trunk(image_B3HW))
