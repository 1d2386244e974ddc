"""OpenAI's ModifiedResNet image tower (RN50, RN101, RN50x4 ...) with open_clip's state-dict
layout; its attention pooling runs on our attention backend."""

from collections import OrderedDict

import torch
from torch import Tensor, nn

from mmpretrain.models.locking import lock_parameters
from mmpretrain.nn.attention import (
    AttentionBackendName,
    resolve_backend,
    scaled_dot_product_attention,
)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> (avgpool when strided) -> 1x1 (x4 channels), anti-aliased downsample."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = None
        if stride > 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential(OrderedDict([
                ("-1", nn.AvgPool2d(stride)),
                ("0", nn.Conv2d(inplanes, planes * self.expansion, 1, bias=False)),
                ("1", nn.BatchNorm2d(planes * self.expansion)),
            ]))

    def forward(self, x_BCHW: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x_BCHW)))
        out = self.avgpool(self.act2(self.bn2(self.conv2(out))))
        out = self.bn3(self.conv3(out))
        identity = x_BCHW if self.downsample is None else self.downsample(x_BCHW)
        return self.act3(out + identity)


class AttentionPool2d(nn.Module):
    """The mean feature (plus learned positions) attends to all positions; its output, projected
    by ``c_proj``, is the embedding. Keys ``positional_embedding``, ``{q,k,v,c}_proj``."""

    def __init__(self, grid_size: int, width: int, heads: int, output_dim: int,
                 attn_backend: AttentionBackendName = "auto"):
        super().__init__()
        self.heads = heads
        self.backend = resolve_backend(attn_backend)
        self.positional_embedding = nn.Parameter(torch.randn(grid_size ** 2 + 1, width) / width ** 0.5)
        self.k_proj = nn.Linear(width, width)
        self.q_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.c_proj = nn.Linear(width, output_dim)

    def forward(self, x_BCHW: Tensor) -> Tensor:
        batch, width = x_BCHW.shape[:2]
        x_BNC = x_BCHW.flatten(2).transpose(1, 2)
        x_BNC = torch.cat([x_BNC.mean(dim=1, keepdim=True), x_BNC], dim=1)
        x_BNC = x_BNC + self.positional_embedding.to(x_BNC.dtype)
        head_dim = width // self.heads
        # only the mean token's output is used, so it is the only query
        q_B1HK = self.q_proj(x_BNC[:, :1]).view(batch, 1, self.heads, head_dim)
        k_BNHK = self.k_proj(x_BNC).view(batch, -1, self.heads, head_dim)
        v_BNHK = self.v_proj(x_BNC).view(batch, -1, self.heads, head_dim)
        out_B1HK = scaled_dot_product_attention(q_B1HK, k_BNHK, v_BNHK, backend=self.backend)
        return self.c_proj(out_B1HK.reshape(batch, width))


class ModifiedResNet(nn.Module):
    """3-conv stem with average pooling, 4 Bottleneck stages (``layers`` blocks each, anti-
    aliased strides), attention pooling to ``output_dim``. ``heads`` of the pooling: open_clip
    uses ``width * 32 // 64``. ``lock`` counts the stages (+ pooling head) from the end;
    locked BatchNorms keep their running statistics (eval mode) while training."""

    def __init__(
        self,
        layers: tuple[int, int, int, int] = (3, 4, 6, 3),
        output_dim: int = 1024,
        heads: int = 32,
        image_size: int = 224,
        width: int = 64,
        attn_backend: AttentionBackendName = "auto",
    ):
        super().__init__()
        if len(layers) != 4 or image_size % 32 != 0:
            raise ValueError(f"ModifiedResNet: layers must have 4 stage depths and image_size be a "
                             f"multiple of 32, got layers={list(layers)}, image_size={image_size}")
        self.layers, self.width, self.heads = tuple(layers), width, heads
        self.output_dim = output_dim
        self.image_size = image_size
        self.conv1 = nn.Conv2d(3, width // 2, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width // 2, width // 2, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width // 2, width, kernel_size=3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.act3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)
        inplanes = width
        for index, (depth, stride) in enumerate(zip(layers, (1, 2, 2, 2))):
            planes = width * 2 ** index
            blocks = [Bottleneck(inplanes, planes, stride)]
            inplanes = planes * Bottleneck.expansion
            blocks += [Bottleneck(inplanes, planes) for _ in range(1, depth)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
        self.attnpool = AttentionPool2d(image_size // 32, width * 32, heads, output_dim,
                                        attn_backend=attn_backend)
        self._frozen_norms: list[nn.Module] = []
        self.init_parameters()

    def init_parameters(self) -> None:
        std = self.attnpool.c_proj.in_features ** -0.5
        for proj in (self.attnpool.q_proj, self.attnpool.k_proj, self.attnpool.v_proj,
                     self.attnpool.c_proj):
            nn.init.normal_(proj.weight, std=std)
        for stage in self.stages():
            for name, param in stage.named_parameters():
                if name.endswith("bn3.weight"):
                    nn.init.zeros_(param)

    def stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, image_B3HW: Tensor) -> Tensor:
        if image_B3HW.ndim != 4 or tuple(image_B3HW.shape[1:]) != (
                3, self.image_size, self.image_size):
            raise ValueError(f"ModifiedResNet expects images [B, 3, {self.image_size}, "
                             f"{self.image_size}], got {tuple(image_B3HW.shape)}")
        x = self.act1(self.bn1(self.conv1(image_B3HW)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.avgpool(self.act3(self.bn3(self.conv3(x))))
        for stage in self.stages():
            x = stage(x)
        return self.attnpool(x)

    def lock(self, unlocked_blocks: int = 0, freeze_norms: bool = True) -> None:
        """Freeze all but the last ``unlocked_blocks`` stages (+ ``attnpool`` when any is
        unlocked); ``0`` locks the whole tower."""
        if not 0 <= unlocked_blocks <= 4:
            raise ValueError(f"lock: unlocked_blocks must be in [0, 4], got {unlocked_blocks}")
        trainable = [f"layer{i}." for i in range(5 - unlocked_blocks, 5)] if unlocked_blocks else []
        lock_parameters(self, [*trainable, *(["attnpool."] if unlocked_blocks else [])],
                        freeze_norms)
        self._frozen_norms = [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)
                              and freeze_norms and not m.weight.requires_grad]
        self.train(self.training)

    def train(self, mode: bool = True) -> "ModifiedResNet":
        super().train(mode)
        for norm in self._frozen_norms:
            norm.eval()
        return self
