"""Multi-rank training beyond DDP: FSDP2 sharding plans, scalar parameters, sharded checkpoints."""

from mmpretrain.distributed.fsdp2 import apply_fsdp2, shard_units
from mmpretrain.distributed.scalars import lift_scalar_parameters, restore_scalar_shapes
from mmpretrain.distributed.sharded_checkpoint import (
    consolidate_sharded_checkpoint,
    is_sharded_checkpoint,
    load_sharded,
    save_sharded,
)

__all__ = ["apply_fsdp2", "shard_units", "lift_scalar_parameters", "restore_scalar_shapes",
           "consolidate_sharded_checkpoint", "is_sharded_checkpoint", "load_sharded",
           "save_sharded"]
