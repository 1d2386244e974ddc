"""Robot-action models: trajectory encoders, factored action heads, IDM and BC policies."""

from mmpretrain.models.robot.action_models import ActionModel, CausalPolicy, InverseDynamicsModel, chunk_targets
from mmpretrain.models.robot.encoder import ImpalaResNet, TrajectoryEncoder
from mmpretrain.models.robot.heads import ActionHeads

__all__ = ["ActionHeads", "ActionModel", "CausalPolicy", "ImpalaResNet", "InverseDynamicsModel",
           "TrajectoryEncoder", "chunk_targets"]
