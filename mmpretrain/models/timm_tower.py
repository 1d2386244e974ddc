"""Image tower around a timm trunk, with open_clip's ``TimmModel`` state-dict layout.

Keys: ``trunk.*`` (the timm model without its classifier) and ``head.*`` (projection to the
embedding). Pretrained trunk weights come from a local file or a timm repo already in the
Hugging Face cache (``hf-hub:timm/NAME``), never from the network.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Literal

from torch import Tensor, nn

from mmpretrain.models.checkpoint_io import load_state_dict_file, resolve_source
from mmpretrain.models.locking import lock_parameters
from mmpretrain.models.state_dict_check import check_state_dict_fits


class TimmVisionTower(nn.Module):
    """``timm.create_model(model_name)`` -> pooled features -> projection.

    ``pool``: timm global pool ('avg', 'token', ... or '' for the model's default).
    ``proj``: 'linear' / 'mlp' head to ``output_dim`` (as open_clip's TimmModel), 'none'
    (the trunk's features are the embedding; their width must equal ``output_dim``), or None
    (open_clip's ``timm_proj: null``: timm's own classifier, sized ``output_dim``, is the
    projection, e.g. EVA02, MobileCLIP, PE-Core).
    ``pretrained``: trunk weights (a timm checkpoint file or ``hf-hub:timm/NAME`` in the local
    cache); its classifier is dropped. ``model_kwargs`` go to ``timm.create_model`` (e.g.
    ``img_size``); ``image_size`` defaults to the model's own input size.
    """

    def __init__(
        self,
        model_name: str,
        output_dim: int = 512,
        image_size: int | None = None,
        pool: str = "avg",
        proj: Literal["linear", "mlp", "none"] | None = "linear",
        proj_bias: bool = False,
        drop: float = 0.0,
        drop_path: float | None = None,
        pretrained: str | None = None,
        grad_checkpointing: bool = False,
        model_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__()
        import timm
        from timm.layers import Mlp

        if proj not in ("linear", "mlp", "none", None):
            raise ValueError(f"TimmVisionTower: proj must be 'linear', 'mlp', 'none' or None, got "
                             f"{proj!r}")
        if model_name not in timm.list_models():
            raise ValueError(f"TimmVisionTower: unknown timm model {model_name!r}")
        self.model_name = model_name
        self.pool = pool
        self.proj = proj
        self.proj_bias = proj_bias
        self.drop = drop
        self.drop_path = drop_path
        self.output_dim = output_dim
        extra = dict(model_kwargs or {})
        if drop_path is not None:
            extra["drop_path_rate"] = drop_path
        # Same construction as open_clip's TimmModel, so parameters and outputs line up.
        if proj in ("none", None):
            # pool '' keeps the model's default pooling (timm reads global_pool='' as "none")
            self.trunk = timm.create_model(model_name, pretrained=False,
                                           num_classes=0 if proj == "none" else output_dim,
                                           **({"global_pool": pool} if pool else {}), **extra)
            if proj == "none" and self.trunk.num_features != output_dim:
                raise ValueError(f"TimmVisionTower: proj='none' needs output_dim == the trunk's "
                                 f"num_features {self.trunk.num_features}, got {output_dim}")
        else:
            self.trunk = timm.create_model(model_name, pretrained=False, **extra)
            self.trunk.reset_classifier(0, **({"global_pool": pool} if pool else {}))
        default_size = int(self.trunk.pretrained_cfg.get("input_size", (3, 224, 224))[-1])
        self.image_size = int(extra.get("img_size", image_size or default_size))
        head: OrderedDict[str, nn.Module] = OrderedDict()
        features = self.trunk.num_features
        if proj == "linear":
            head["drop"] = nn.Dropout(drop)
            head["proj"] = nn.Linear(features, output_dim, bias=proj_bias)
        elif proj == "mlp":
            head["mlp"] = Mlp(features, 2 * output_dim, output_dim, drop=(drop, 0.0),
                              bias=(True, proj_bias))
        self.head = nn.Sequential(head)
        if grad_checkpointing:
            self.trunk.set_grad_checkpointing(True)
        if pretrained is not None:
            self.load_trunk_weights(pretrained)

    def load_trunk_weights(self, source: str) -> None:
        """Load a timm checkpoint into the trunk, dropping its (reset) classifier; with
        ``proj=None`` the ``output_dim`` classifier keeps its initial weights."""
        weights = resolve_source(source).weights
        state_dict = load_state_dict_file(weights)
        classifier = self.trunk.pretrained_cfg.get("classifier") or "head"
        classifiers = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        target = self.trunk.state_dict()
        is_classifier = tuple(c + "." for c in classifiers)
        state_dict = {key: value for key, value in state_dict.items()
                      if not key.startswith(is_classifier)
                      or (key in target and target[key].shape == value.shape)}
        state_dict.update({key: value for key, value in target.items()
                           if key.startswith(is_classifier) and key not in state_dict})
        check_state_dict_fits(target, state_dict, str(weights), f"timm {self.model_name}")
        self.trunk.load_state_dict(state_dict, strict=True)

    def lock(self, unlocked_blocks: int = 0, freeze_norms: bool = True) -> None:
        """Freeze the trunk but its last ``unlocked_blocks`` layer groups (timm's
        ``group_matcher``); the head stays trainable when any block is unlocked. Frozen
        BatchNorms become ``FrozenBatchNorm2d`` (running statistics no longer update)."""
        from timm.models import group_modules, group_parameters
        from timm.utils import freeze

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
            locked = [name for name, group in module_groups.items() if group < first_unlocked]
            if locked:
                freeze(self.trunk, locked, include_bn_running_stats=True)

    def forward(self, image_B3HW: Tensor) -> Tensor:
        return self.head(self.trunk(image_B3HW))
