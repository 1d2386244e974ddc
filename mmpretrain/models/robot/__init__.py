"""Robot-action models: trajectory encoders, factored action heads, IDM and BC policies,
representation pretraining objectives (inverse dynamics, forward dynamics, contrastive)."""

from mmpretrain.models.robot.action_models import ActionModel, CausalPolicy, InverseDynamicsModel, chunk_targets
from mmpretrain.models.robot.contrastive_representation import ContrastiveRepresentation
from mmpretrain.models.robot.encoder import ImpalaResNet, TrajectoryEncoder
from mmpretrain.models.robot.forward_dynamics import ForwardDynamicsRepresentation
from mmpretrain.models.robot.heads import ActionHeads
from mmpretrain.models.robot.history import HistoryPolicy, select_history
from mmpretrain.models.robot.id_representation import (FrozenEncoderPolicy, InverseDynamicsRepresentation,
                                                       SpatialSoftmaxEncoder, load_encoder_state)

__all__ = ["ActionHeads", "ActionModel", "CausalPolicy", "ContrastiveRepresentation", "ForwardDynamicsRepresentation",
           "FrozenEncoderPolicy", "HistoryPolicy", "ImpalaResNet", "InverseDynamicsModel",
           "InverseDynamicsRepresentation", "SpatialSoftmaxEncoder", "TrajectoryEncoder", "chunk_targets",
           "load_encoder_state", "select_history"]
