"""FSDP2 (``torch.distributed.fsdp.fully_shard``) sharding plans for every model family.

A plan is the list of modules that become their own FSDP unit (one all-gather / reduce-scatter
each), innermost first; the model itself is sharded last as the root unit, so whatever no unit
owns (embeddings, projections, final norms, the temperature) lives in the root group.

| family | units |
|---|---|
| CLIP / SigLIP / CoCa | every ``ResidualAttentionBlock`` of ``visual`` and ``text`` (CoCa: also the decoder's self- and cross-attention blocks); a timm / HF tower without our blocks is one unit |
| video (mean-pool, space-time, token rolling) | the ViT's blocks, as for CLIP (token rolling routes through the block's forward) |
| interleaved LM | text, gated cross-attention and LM blocks, the visual resampler, the image tower's blocks |
| robot (IDM, BC, history policies) | the transformer blocks and the IMPALA frame CNN |

0-dim parameters are lifted to ``[1]`` first (``scalars.py``); weight-decay groups must be
decided from the shapes recorded before that (``tasks/param_groups.py``).
"""

from __future__ import annotations

import functools

from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from mmpretrain.distributed.original_shapes import record_original_shapes
from mmpretrain.distributed.scalars import lift_scalar_parameters
from mmpretrain.models.interleaved.cross_attention import GatedCrossAttentionBlock, VisualResampler
from mmpretrain.models.robot.encoder import ImpalaResNet
from mmpretrain.nn.transformer import ResidualAttentionBlock

# ResidualAttentionBlock covers CrossAttentionBlock (CoCa's decoder), a subclass.
SHARDED_BLOCK_TYPES: tuple[type[nn.Module], ...] = (
    ResidualAttentionBlock, GatedCrossAttentionBlock, VisualResampler, ImpalaResNet)
# Towers that hold no block of the types above (timm / HF towers) become one unit each.
TOWER_NAMES = ("visual", "text", "text_decoder", "encoder", "selection_encoder")


# Root methods the tasks and evaluators call instead of forward (retrieval / zero-shot
# encoders, CoCa's captioner, robot objectives and rollouts). Blocks inside them run their
# own (hooked) forward; the root's parameters are all-gathered first by `unshard()`.
# (`register_fsdp_forward_method` would nest FSDP's root hooks when forward itself calls
# them, as CLIP.forward calls encode_image, and double-reshard in backward.)
FORWARD_METHODS = ("encode_image", "encode_text", "generate", "training_terms", "predict_actions")


def _gathering_root_parameters(model: FSDPModule, method_name: str) -> None:
    method = getattr(model, method_name)

    @functools.wraps(method)
    def call(*args, **kwargs):
        model.unshard()  # a no-op while they are gathered (inside forward, until backward)
        return method(*args, **kwargs)

    setattr(model, method_name, call)


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules :func:`apply_fsdp2` shards before the root, children before parents."""
    units = [m for m in model.modules() if isinstance(m, SHARDED_BLOCK_TYPES) and m is not model]
    for name in TOWER_NAMES:
        tower = getattr(model, name, None)
        if isinstance(tower, nn.Module) and _has_parameters(tower) \
                and not any(isinstance(m, SHARDED_BLOCK_TYPES) for m in tower.modules()):
            units.append(tower)
    order = {id(m): i for i, m in enumerate(model.modules())}
    return sorted(units, key=lambda m: -order[id(m)])


def apply_fsdp2(model: nn.Module, mesh: DeviceMesh | None = None,
                mp_policy: MixedPrecisionPolicy | None = None,
                reshard_after_forward: bool | None = None) -> nn.Module:
    """Shard ``model`` in place by its family's plan; returns it (now an ``FSDPModule``).

    Records original parameter shapes (for weight-decay groups) and lifts scalars before any
    parameter becomes a ``DTensor`` shard. ``reshard_after_forward`` applies to the units; the
    root keeps FSDP's automatic choice (no reshard after forward), which the tasks rely on:
    they read root parameters after the forward (SigLIP's ``logit_bias`` output, the
    interleaved LM's tied head and ``logit_scale``), and a resharded root would leave those
    tensors pointing at freed storage."""
    record_original_shapes(model)
    lift_scalar_parameters(model)
    kwargs = {"mesh": mesh}
    if mp_policy is not None:
        kwargs["mp_policy"] = mp_policy
    for unit in shard_units(model):
        fully_shard(unit, reshard_after_forward=reshard_after_forward, **kwargs)
    fully_shard(model, **kwargs)
    for method in FORWARD_METHODS:
        if callable(getattr(model, method, None)):
            _gathering_root_parameters(model, method)
    return model
