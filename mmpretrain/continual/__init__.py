"""Continual pretraining: task streams, replay mixtures, LR (meta-)schedules, merging, CTP, PEFT."""

from mmpretrain.continual.ctp import (
    MomentumQueue,
    ctp_momentum_update,
    momentum_contrast_loss,
    topology_preservation_loss,
)
from mmpretrain.continual.ewc import EWC
from mmpretrain.continual.lora import LoRALinear, apply_lora, merge_lora
from mmpretrain.continual.merging import WeightMerging, interpolate_state_dicts
from mmpretrain.continual.peft import TrainableParameters
from mmpretrain.continual.schedules import ContinualLR, ContinualSchedule

__all__ = ["EWC", "ContinualLR", "ContinualSchedule", "LoRALinear", "MomentumQueue",
           "TrainableParameters", "WeightMerging", "apply_lora", "ctp_momentum_update",
           "interpolate_state_dicts", "merge_lora", "momentum_contrast_loss",
           "topology_preservation_loss"]
