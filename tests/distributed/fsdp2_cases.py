"""One tiny model per family with a per-rank batch and the task's loss, for the FSDP2 tests.

Each case builds the same model on every rank (seeded) and returns its local loss; the
worker runs it unsharded with DDP's gradient averaging and sharded with ``apply_fsdp2``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.losses import ClipLoss
from mmpretrain.losses.captioning import CoCaLoss
from mmpretrain.losses.siglip import SigLipLoss

IMAGE, CONTEXT, VOCAB = 32, 16, 500
SMALL_TOWERS = {"embed_dim": 32,
                "vision_cfg": {"image_size": IMAGE, "layers": 2, "width": 32, "patch_size": 8,
                               "head_width": 16},
                "text_cfg": {"context_length": CONTEXT, "vocab_size": VOCAB, "width": 32,
                             "heads": 2, "layers": 2}}


@dataclass
class Case:
    build: Callable[[], nn.Module]
    loss: Callable[[nn.Module, dict, nn.Module | None], Tensor]  # (model, batch, loss module)
    batch: Callable[[int], dict]  # rank -> that rank's batch
    loss_module: Callable[[], nn.Module] | None = None


def _image_text_batch(rank: int, batch: int = 3) -> dict:
    gen = torch.Generator().manual_seed(100 + rank)
    text = torch.randint(1, VOCAB - 1, (batch, CONTEXT), generator=gen)
    text[:, -3:] = 0  # padding after an end token, as the tokenizer writes it
    text[:, -4] = VOCAB - 1
    return {"image": torch.randn(batch, 3, IMAGE, IMAGE, generator=gen), "text": text}


def _two_tower_loss(model: nn.Module, batch: dict, loss: nn.Module | None) -> Tensor:
    out = model(batch["image"], batch["text"])
    if "caption_logits" in out:
        return loss(out["image_features"], out["text_features"], out["logit_scale"], None,
                    caption_logits=out["caption_logits"], caption_labels=out["caption_labels"])
    return loss(out["image_features"], out["text_features"], out["logit_scale"], out.get("logit_bias"))


def _clip() -> nn.Module:
    from mmpretrain.models import clip_from_open_clip_config
    return clip_from_open_clip_config(SMALL_TOWERS, attn_backend="sdpa")


def _siglip() -> nn.Module:
    from mmpretrain.models import CLIP, clip_from_open_clip_config
    towers = clip_from_open_clip_config(SMALL_TOWERS, attn_backend="sdpa")
    return CLIP(towers.visual, towers.text, init_logit_scale=math.log(10), init_logit_bias=-10.0,
                max_logit_scale=None)


def _coca() -> nn.Module:
    from mmpretrain.models import clip_from_open_clip_config
    cfg = {"embed_dim": 32,
           "vision_cfg": {**SMALL_TOWERS["vision_cfg"], "attentional_pool": True,
                          "attn_pooler_queries": 5, "attn_pooler_heads": 2, "output_tokens": True},
           "text_cfg": {**SMALL_TOWERS["text_cfg"], "embed_cls": True, "output_tokens": True},
           "multimodal_cfg": {"context_length": CONTEXT, "vocab_size": VOCAB, "width": 32,
                              "heads": 2, "layers": 1},
           "custom_text": True}
    return clip_from_open_clip_config(cfg, attn_backend="sdpa")


def _video() -> nn.Module:
    from mmpretrain.models import TextTransformer
    from mmpretrain.models.video import TokenRollingVideoEncoder, VideoCLIP
    vision = TokenRollingVideoEncoder(image_size=16, patch_size=4, width=32, layers=2, heads=2,
                                      output_dim=32, attn_backend="sdpa")
    text = TextTransformer(context_length=CONTEXT, vocab_size=VOCAB, width=32, layers=2, heads=2,
                           output_dim=32, attn_backend="sdpa")
    return VideoCLIP(vision, text)


def _video_batch(rank: int) -> dict:
    batch = _image_text_batch(rank)
    gen = torch.Generator().manual_seed(200 + rank)
    return {"image": torch.randn(3, 4, 3, 16, 16, generator=gen), "text": batch["text"]}


# ---------------------------------------------------------------- interleaved
@lru_cache(maxsize=1)
def _tokenizer():
    from mmpretrain.data.sources.interleaved import interleaved_tokenizer
    return interleaved_tokenizer()


def _interleaved() -> nn.Module:
    from mmpretrain.models import VisionTransformer
    from mmpretrain.models.interleaved import InterleavedLM
    vision = VisionTransformer(image_size=16, patch_size=8, width=32, layers=1, heads=2,
                               output_dim=16, attn_backend="sdpa")
    model = InterleavedLM(vision, vocab_size=_tokenizer().vocab_size, context_length=96,
                          width=32, text_layers=1, multimodal_layers=2, heads=2, visual_tokens=2,
                          attn_backend="sdpa")
    with torch.no_grad():  # open the gates so the images (and the gates' gradients) matter
        for block in model.cross_blocks:
            block.attn_gate.fill_(0.7)
            block.mlp_gate.fill_(-0.4)
    return model


def _interleaved_batch(rank: int) -> dict:
    """Two documents per rank with the same number of images on both ranks (an equal-size
    feature gather; unequal counts are the gather's own concern)."""
    from mmpretrain.data.packing import InterleavedCollator
    from mmpretrain.data.sources.interleaved import (
        IMAGE_TOKEN,
        InterleavedDocumentDecoder,
    )
    from mmpretrain.data.synthetic.interleaved import InterleavedOptions, make_document
    from mmpretrain.data.transforms import ImageTransform
    tokenizer = _tokenizer()
    options = InterleavedOptions(num_samples=12, max_images=2, icon_probability=0.0,
                                 inline_fraction=0.0)
    decoder = InterleavedDocumentDecoder(ImageTransform(16, train=False), tokenizer,
                                         visual_tokens=2, max_length=96)
    docs = []
    for index in range(12):
        sample = make_document(index, options)
        docs.append(decoder({**sample, "json": json.dumps(sample["json"]).encode()}))
    counts = [len(doc.images) for doc in docs]
    pairs = [(i, i + 1) for i in range(0, 12, 2)]
    by_count: dict[int, list[tuple[int, int]]] = {}
    for i, j in pairs:
        by_count.setdefault(counts[i] + counts[j], []).append((i, j))
    chosen = next(p for p in by_count.values() if len(p) >= 2)[rank]
    collate = InterleavedCollator(96, "packed", tokenizer.sot_token_id,
                                  tokenizer.special_token_id(IMAGE_TOKEN), 2)
    return collate([docs[k] for k in chosen])


def _interleaved_loss(model: nn.Module, batch: dict, loss: nn.Module | None) -> Tensor:
    """InterleavedTask's objective: next-token LM + 0.5 x chunk InfoNCE."""
    from mmpretrain.losses.language_model import NextTokenLoss, next_token_targets
    out = model(batch["tokens"], batch["position_ids"], batch["segment_ids"], batch["images"],
                batch["image_slots"], batch["media_slot"])
    source_T, target_T = next_token_targets(batch["tokens"], batch["segment_ids"], batch["text_mask"])
    lm = NextTokenLoss()(model.lm_logits(out["hidden"], source_T), target_T, None)
    image_NE = F.normalize(out["image_features"], dim=-1)
    text_NE = model.text_embedding(out["text_hidden"], batch["chunk_end"])
    return lm + 0.5 * loss(image_NE, text_NE, model.logit_scale.exp())


# ---------------------------------------------------------------- robot
def _robot() -> nn.Module:
    from mmpretrain.data.synthetic.cursor_env import ACTION_SPACE
    from mmpretrain.models.robot import InverseDynamicsModel, TrajectoryEncoder
    encoder = TrajectoryEncoder(24, channels=(8, 8), width=32, layers=1, heads=2, max_frames=8,
                                attn_backend="sdpa", pool="spatial_softmax")
    return InverseDynamicsModel(ACTION_SPACE, encoder)


def _robot_batch(rank: int) -> dict:
    gen = torch.Generator().manual_seed(300 + rank)
    frames = torch.randint(0, 256, (2, 6, 3, 24, 24), generator=gen, dtype=torch.uint8)
    actions = torch.stack([torch.randint(0, 2, (2, 6), generator=gen).float(),
                           torch.randint(-1, 2, (2, 6), generator=gen).float() * 10,
                           torch.randint(-1, 2, (2, 6), generator=gen).float() * 10,
                           torch.randint(0, 3, (2, 6), generator=gen).float()], dim=-1)
    return {"frames": frames, "actions": actions}


def _robot_loss(model: nn.Module, batch: dict, loss: nn.Module | None) -> Tensor:
    from mmpretrain.data.synthetic.cursor_env import ACTION_SPACE
    from mmpretrain.losses.action import FactoredActionLoss
    targets, mask = model.targets(batch["actions"], torch.ones(2, 6, dtype=torch.bool))
    return FactoredActionLoss(ACTION_SPACE)(model(batch["frames"]), targets, mask)["loss"]


CASES: dict[str, Case] = {
    "clip": Case(_clip, _two_tower_loss, _image_text_batch, ClipLoss),
    "siglip": Case(_siglip, _two_tower_loss, _image_text_batch, SigLipLoss),
    "coca": Case(_coca, _two_tower_loss, _image_text_batch, CoCaLoss),
    "video": Case(_video, _two_tower_loss, _video_batch, ClipLoss),
    "interleaved": Case(_interleaved, _interleaved_loss, _interleaved_batch, ClipLoss),
    "robot": Case(_robot, _robot_loss, _robot_batch),
}
