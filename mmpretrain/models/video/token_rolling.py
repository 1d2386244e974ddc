"""All-in-One temporal token rolling: parameter-free temporal mixing inside every block.

Before each block's self-attention the tokens of a clip are viewed as ``[B, T, L, C]``;
the CLS token (0) stays, tokens ``1..L//8`` roll by +1 along time (each frame sees those
tokens of the previous frame), the last ``L//8`` roll by -1 (the next frame's), circularly.
Rolling is per token and LayerNorm is per token, so rolling the normalised attention input
equals normalising rolled tokens; the residual stream keeps the frame's own tokens.
"""

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from mmpretrain.models.video.frames import check_video, mean_of_normalised
from mmpretrain.models.vision_transformer import VisionTransformer
from mmpretrain.nn.transformer import ResidualAttentionBlock


def roll_tokens(tokens_BTLC: Tensor) -> Tensor:
    """Roll tokens ``1..L//8`` by +1 and the last ``L//8`` by -1 along T; others unchanged."""
    L = tokens_BTLC.shape[2]
    fold = L // 8
    if fold == 0:
        return tokens_BTLC
    forward_BTFC = tokens_BTLC[:, :, 1:1 + fold].roll(1, dims=1)
    backward_BTFC = tokens_BTLC[:, :, L - fold:].roll(-1, dims=1)
    middle_BTMC = tokens_BTLC[:, :, 1 + fold:L - fold]
    return torch.cat([tokens_BTLC[:, :, :1], forward_BTFC, middle_BTMC, backward_BTFC], dim=2)


class TokenRollingVideoEncoder(VisionTransformer):
    """Image ViT whose blocks roll tokens across frames; frame CLS features are mean-pooled."""

    video_only_parameters: tuple[str, ...] = ()

    def forward(self, video_BT3HW: Tensor) -> Tensor:
        B, T = check_video(video_BT3HW, self.image_size, type(self).__name__)
        x_NLW = self.embed_tokens(video_BT3HW.flatten(0, 1))
        checkpointed = self.transformer.grad_checkpointing and torch.is_grad_enabled()
        for block in self.transformer.resblocks:
            if checkpointed:
                x_NLW = checkpoint(_rolling_block, block, x_NLW, T, use_reentrant=False)
            else:
                x_NLW = _rolling_block(block, x_NLW, T)
        return mean_of_normalised(self.pool(x_NLW).view(B, T, -1))


def _rolling_block(block: ResidualAttentionBlock, x_NLW: Tensor, T: int) -> Tensor:
    """`block` with its attention input rolled across the T frames of each clip (through the
    block's own forward, so FSDP's hooks on it run)."""
    N, L, W = x_NLW.shape
    return block(x_NLW, mix_attn_input=lambda a_NLW: roll_tokens(a_NLW.view(N // T, T, L, W)).reshape(N, L, W))
