"""Two-tower contrastive model (CLIP / SigLIP) over any image and text tower."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CLIP(nn.Module):
    """Image tower ``visual`` + text tower ``text`` + learnable temperature (and bias).

    The state dict follows open_clip's ``CustomTextCLIP`` layout (``visual.*``, ``text.*``,
    ``logit_scale``, optional ``logit_bias``); see ``open_clip_layout`` for the plain ``CLIP``
    layout. ``logit_scale`` stores log-temperature; :meth:`forward` returns its exp. The
    training task clamps the parameter in place after each optimizer step to
    [0, ln(``max_logit_scale``)] (100 for CLIP, None = unclamped for SigLIP), as open_clip does,
    so the forward never cuts its gradient (``tasks/temperature.py``).

    LiT-style locking: ``lock_image`` / ``lock_text`` freeze a tower at construction except
    its last ``lock_*_unlocked_blocks`` blocks (0 = the whole tower, head included); the tower
    must have a ``lock(unlocked_blocks, freeze_norms)`` method. ``lock_freeze_norms=False``
    keeps norm layers inside the locked part trainable.
    """

    def __init__(
        self,
        vision: nn.Module,
        text: nn.Module,
        init_logit_scale: float = math.log(1 / 0.07),
        init_logit_bias: float | None = None,
        max_logit_scale: float | None = 100.0,
        lock_image: bool = False,
        lock_image_unlocked_blocks: int = 0,
        lock_text: bool = False,
        lock_text_unlocked_blocks: int = 0,
        lock_freeze_norms: bool = True,
    ):
        super().__init__()
        vision_dim = getattr(vision, "output_dim", None)
        text_dim = getattr(text, "output_dim", None)
        if vision_dim is None or text_dim is None:
            raise ValueError("CLIP: both towers must expose `.output_dim`; got vision "
                             f"{type(vision).__name__}={vision_dim}, text {type(text).__name__}="
                             f"{text_dim}")
        if vision_dim != text_dim:
            raise ValueError(f"CLIP: vision.output_dim ({vision_dim}) must equal text.output_dim "
                             f"({text_dim}); set both towers' output_dim to the same embed dim")
        if max_logit_scale is not None and max_logit_scale <= 0:
            raise ValueError("CLIP: max_logit_scale must be positive or None, got "
                             f"{max_logit_scale}")
        self.output_dim = vision_dim
        self.visual = vision
        self.text = text
        self.max_logit_scale = max_logit_scale
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.logit_bias = (nn.Parameter(torch.tensor(float(init_logit_bias)))
                           if init_logit_bias is not None else None)
        for locked, tower, unlocked, name in ((lock_image, vision, lock_image_unlocked_blocks,
                                               "lock_image"),
                                              (lock_text, text, lock_text_unlocked_blocks,
                                               "lock_text")):
            if not locked:
                continue
            if not callable(getattr(tower, "lock", None)):
                raise ValueError(f"CLIP: {name}=true but {type(tower).__name__} has no "
                                 "lock(unlocked_blocks, freeze_norms) method")
            tower.lock(unlocked, lock_freeze_norms)

    def encode_image(self, image_B3HW: Tensor, normalize: bool = False) -> Tensor:
        feats_BD = self.visual(image_B3HW)
        return F.normalize(feats_BD, dim=-1) if normalize else feats_BD

    def encode_text(self, tokens_BL: Tensor, normalize: bool = False) -> Tensor:
        feats_BD = self.text(tokens_BL)
        return F.normalize(feats_BD, dim=-1) if normalize else feats_BD

    def lock_image_tower(self, unlocked_groups: int = 0, freeze_bn_stats: bool = True) -> None:
        """open_clip's method name for ``lock_image``: freeze all but the last groups."""
        self.visual.lock(unlocked_groups, freeze_bn_stats)

    def lock_text_tower(self, unlocked_layers: int = 0, freeze_layer_norm: bool = True) -> None:
        """open_clip's method name for ``lock_text``: freeze all but the last layers."""
        self.text.lock(unlocked_layers, freeze_layer_norm)

    def scale(self) -> Tensor:
        """exp(logit_scale); its bound is kept by the in-place clamp after each step."""
        return self.logit_scale.exp()

    def forward(self, image: Tensor, text: Tensor) -> dict[str, Tensor | None]:
        return {
            "image_features": self.encode_image(image, normalize=True),
            "text_features": self.encode_text(text, normalize=True),
            "logit_scale": self.scale(),
            "logit_bias": self.logit_bias,
        }
