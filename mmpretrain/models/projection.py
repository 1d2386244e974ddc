"""Projection heads for auxiliary objectives (e.g. the extra-view projector of Fini et al.)."""

from torch import Tensor, nn


class ProjectionMLP(nn.Module):
    """Linear -> LayerNorm -> GELU -> Linear: ``[N, in_dim] -> [N, out_dim]``."""

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 128):
        super().__init__()
        self.output_dim = out_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.LayerNorm(hidden_dim),
                                 nn.GELU(), nn.Linear(hidden_dim, out_dim))

    def forward(self, x_ND: Tensor) -> Tensor:
        return self.net(x_ND)
