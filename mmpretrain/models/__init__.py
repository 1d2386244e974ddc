"""nn.Module models: towers, the two-tower CLIP, CoCa, and the named-config registry."""

from mmpretrain.models.checkpoints import from_open_clip
from mmpretrain.models.clip import CLIP
from mmpretrain.models.coca import CoCa
from mmpretrain.models.coca_towers import CoCaTextTransformer, CoCaVisionTransformer
from mmpretrain.models.open_clip_layout import from_open_clip_state_dict, to_open_clip_state_dict
from mmpretrain.models.projection import ProjectionMLP
from mmpretrain.models.registry import (
    clip_from_open_clip_config,
    create_clip,
    get_model_config,
    list_models,
)
from mmpretrain.models.hf_text_tower import HFTextTower
from mmpretrain.models.modified_resnet import ModifiedResNet
from mmpretrain.models.text_decoder import MultimodalTextDecoder
from mmpretrain.models.text_transformer import TextTransformer
from mmpretrain.models.timm_tower import TimmVisionTower
from mmpretrain.models.vision_transformer import VisionTransformer

__all__ = [
    "CLIP",
    "CoCa",
    "CoCaTextTransformer",
    "CoCaVisionTransformer",
    "HFTextTower",
    "ModifiedResNet",
    "MultimodalTextDecoder",
    "ProjectionMLP",
    "TextTransformer",
    "TimmVisionTower",
    "VisionTransformer",
    "clip_from_open_clip_config",
    "create_clip",
    "from_open_clip",
    "from_open_clip_state_dict",
    "get_model_config",
    "list_models",
    "to_open_clip_state_dict",
]
