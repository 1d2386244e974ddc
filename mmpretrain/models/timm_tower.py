"""Image tower around a timm trunk, with open_clip's ``TimmModel`` state-dict layout.

Keys: ``trunk.*`` (the timm model without its classifier) and ``head.proj.weight`` (linear
projection to the embedding). Pretrained trunk weights come from a local file or a timm repo
already in the Hugging Face cache (``hf-hub:timm/NAME``), never from the network.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

from torch import Tensor, nn

from mmpretrain.models.checkpoint_io import load_state_dict_file, resolve_source
from mmpretrain.models.state_dict_check import check_state_dict_fits


class TimmVisionTower(nn.Module):
    """``timm.create_model(model_name)`` -> pooled features -> optional linear projection.

    ``pool``: timm global pool ('avg', 'token', ... or '' for the model's default).
    ``proj``: 'linear' (projection to ``output_dim``) or 'none' (the trunk's features are the
    embedding; their width must equal ``output_dim``). ``pretrained``: trunk weights (a timm
    checkpoint file or ``hf-hub:timm/NAME`` in the local cache); its classifier is dropped.
    """

    def __init__(
        self,
        model_name: str,
        output_dim: int = 512,
        image_size: int = 224,
        pool: str = "avg",
        proj: Literal["linear", "none"] = "linear",
        proj_bias: bool = False,
        drop: float = 0.0,
        drop_path: float | None = None,
        pretrained: str | None = None,
    ):
        super().__init__()
        import timm

        if proj not in ("linear", "none"):
            raise ValueError(f"TimmVisionTower: proj must be 'linear' or 'none', got {proj!r}")
        self.model_name = model_name
        self.image_size = image_size
        self.pool = pool
        self.proj = proj
        self.proj_bias = proj_bias
        self.drop = drop
        self.drop_path = drop_path
        self.output_dim = output_dim
        extra = {} if drop_path is None else {"drop_path_rate": drop_path}
        # Same construction as open_clip's TimmModel, so parameters and outputs line up.
        if proj == "none":
            self.trunk = timm.create_model(model_name, pretrained=False, num_classes=0,
                                           global_pool=pool, **extra)
            if self.trunk.num_features != output_dim:
                raise ValueError(f"TimmVisionTower: proj='none' needs output_dim == the trunk's "
                                 f"feature width {self.trunk.num_features}, got {output_dim}")
        else:
            self.trunk = timm.create_model(model_name, pretrained=False, **extra)
            self.trunk.reset_classifier(0, **({"global_pool": pool} if pool else {}))
        head: OrderedDict[str, nn.Module] = OrderedDict()
        if proj == "linear":
            head["drop"] = nn.Dropout(drop)
            head["proj"] = nn.Linear(self.trunk.num_features, output_dim, bias=proj_bias)
        self.head = nn.Sequential(head)
        if pretrained is not None:
            self.load_trunk_weights(pretrained)

    def load_trunk_weights(self, source: str) -> None:
        """Load a timm checkpoint into the trunk, dropping its (reset) classifier."""
        weights = resolve_source(source).weights
        state_dict = load_state_dict_file(weights)
        classifier = self.trunk.pretrained_cfg.get("classifier") or "head"
        classifiers = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        target = self.trunk.state_dict()
        state_dict = {key: value for key, value in state_dict.items()
                      if key in target or not key.startswith(tuple(c + "." for c in classifiers))}
        check_state_dict_fits(target, state_dict, str(weights), f"timm {self.model_name}")
        self.trunk.load_state_dict(state_dict, strict=True)

    def forward(self, image_B3HW: Tensor) -> Tensor:
        return self.head(self.trunk(image_B3HW))
