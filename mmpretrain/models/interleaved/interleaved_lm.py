"""COSMO-style interleaved image-text language model.

    images --ViT--> tokens --resampler--> visual tokens [N, V, D]      (+ pooled image embedding)
    text   --embed--> lower text-only blocks --(text embedding at <|endofchunk|>)
                  --> upper blocks: [gated cross-attention to visual tokens, causal self-attention]
                  --> final LN --> tied LM head

The lower blocks never see images, so their output is a pure text representation for the
contrastive loss (COSMO). Each token cross-attends only to the visual tokens of the latest
image at or before it in its own document (`media_slot`, Flamingo). Self-attention is
block-diagonal causal over packed documents (`nn.packing`), positions restart per document.
Without images (`images_N3HW=None`) the upper blocks skip cross-attention: that is exactly the
model with every gate at zero, the text-only language model it starts from.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.models.interleaved.cross_attention import GatedCrossAttentionBlock, VisualResampler
from mmpretrain.nn.attention import AttentionBackendName, resolve_backend
from mmpretrain.nn.packing import block_causal_attention
from mmpretrain.nn.transformer import ResidualAttentionBlock

# CLIP BPE (49408) + `<image>` + `<|endofchunk|>`, as `data.sources.interleaved` builds it
INTERLEAVED_VOCAB_SIZE = 49410


class InterleavedLM(nn.Module):
    def __init__(
        self,
        vision: nn.Module,
        vocab_size: int = INTERLEAVED_VOCAB_SIZE,
        context_length: int = 256,
        width: int = 256,
        text_layers: int = 2,
        multimodal_layers: int = 2,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        visual_tokens: int = 8,
        attn_backend: AttentionBackendName = "auto",
        init_logit_scale: float = math.log(1 / 0.07),
    ) -> None:
        """`vision`: an image tower with `embed_tokens`, `transformer`, `pool`, `width` and
        `output_dim` (`VisionTransformer`); its pooled output is the image embedding and its
        `output_dim` the contrastive embedding size. `visual_tokens`: resampled tokens per image
        (match the data's placeholders per image)."""
        super().__init__()
        if text_layers < 1 or multimodal_layers < 1:
            raise ValueError(f"need >= 1 text and multimodal layers, got {text_layers}, {multimodal_layers}")
        self.context_length, self.width, self.vocab_size = context_length, width, vocab_size
        self.num_visual_tokens = visual_tokens
        self.output_dim = vision.output_dim
        self.attn_backend = resolve_backend(attn_backend)
        self.visual = vision
        self.resampler = VisualResampler(vision.width, width, visual_tokens, heads, mlp_ratio,
                                         attn_backend=self.attn_backend)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.text_blocks = nn.ModuleList([ResidualAttentionBlock(width, heads, mlp_ratio, self.attn_backend)
                                          for _ in range(text_layers)])
        self.cross_blocks = nn.ModuleList([GatedCrossAttentionBlock(width, heads, mlp_ratio, self.attn_backend)
                                           for _ in range(multimodal_layers)])
        self.lm_blocks = nn.ModuleList([ResidualAttentionBlock(width, heads, mlp_ratio, self.attn_backend)
                                        for _ in range(multimodal_layers)])
        self.ln_text = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, self.output_dim))
        self.ln_final = nn.LayerNorm(width)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.init_parameters()

    def init_parameters(self) -> None:
        # open_clip's text-tower scheme: residual projections shrink with depth
        layers = len(self.text_blocks) + len(self.lm_blocks)
        proj_std = self.width ** -0.5 * (2 * layers) ** -0.5
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for block in [*self.text_blocks, *self.lm_blocks]:
            nn.init.normal_(block.attn.in_proj_weight, std=self.width ** -0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * self.width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=self.width ** -0.5)

    def encode_images(self, images_N3HW: Tensor) -> tuple[Tensor, Tensor]:
        """(visual tokens [N, V, width], image embedding [N, output_dim]) of each image."""
        tokens_NTC = self.visual.transformer(self.visual.embed_tokens(images_N3HW))
        return self.resampler(tokens_NTC), self.visual.pool(tokens_NTC)

    def forward(self, tokens_BL: Tensor, position_ids_BL: Tensor, segment_ids_BL: Tensor,
                images_N3HW: Tensor | None = None, image_slots_BM: Tensor | None = None,
                media_slot_BL: Tensor | None = None) -> dict[str, Tensor | None]:
        """`hidden` [B, L, width] (final, normalised), `text_hidden` [B, L, width] (after the
        text-only blocks) and `image_features` [N, output_dim] (None without images)."""
        if tokens_BL.shape[1] > self.context_length or int(position_ids_BL.max()) >= self.context_length:
            raise ValueError(f"InterleavedLM: sequences of {tokens_BL.shape[1]} tokens exceed "
                             f"context_length={self.context_length}")
        self_bias, causal = block_causal_attention(segment_ids_BL, self.attn_backend)
        x_BLD = self.token_embedding(tokens_BL) + self.positional_embedding[position_ids_BL]
        for block in self.text_blocks:
            x_BLD = block(x_BLD, causal=causal, attn_bias=self_bias)
        text_hidden_BLD = x_BLD
        image_features = None
        if images_N3HW is not None:
            visual_NVD, image_features = self.encode_images(images_N3HW)
            visual_BKD, keep_BLK = self._row_visual_tokens(visual_NVD, image_slots_BM, media_slot_BL)
            has_media_BL = media_slot_BL >= 0
        for index, block in enumerate(self.lm_blocks):
            if images_N3HW is not None:
                x_BLD = self.cross_blocks[index](x_BLD, visual_BKD, keep_BLK, has_media_BL)
            x_BLD = block(x_BLD, causal=causal, attn_bias=self_bias)
        return {"hidden": self.ln_final(x_BLD), "text_hidden": text_hidden_BLD, "image_features": image_features}

    def _row_visual_tokens(self, visual_NVD: Tensor, image_slots_BM: Tensor,
                           media_slot_BL: Tensor) -> tuple[Tensor, Tensor]:
        """Each row's images' visual tokens [B, M*V, D] and which of them each token sees."""
        valid_BM = image_slots_BM >= 0
        visual_BMVD = visual_NVD[image_slots_BM.clamp(min=0)] * valid_BM[:, :, None, None]
        key_slot_K = torch.arange(image_slots_BM.shape[1], device=visual_NVD.device).repeat_interleave(
            visual_NVD.shape[1])
        keep_BLK = media_slot_BL[:, :, None] == key_slot_K[None, None, :]
        return visual_BMVD.flatten(1, 2), keep_BLK

    def lm_logits(self, hidden_BLD: Tensor, flat_index_T: Tensor) -> Tensor:
        """Next-token logits [T, vocab] at the flat positions `flat_index_T` (row * L + t) only:
        the head is tied to the token embedding."""
        return hidden_BLD.flatten(0, 1)[flat_index_T] @ self.token_embedding.weight.T

    def contrastive_head_parameters(self) -> list[nn.Parameter]:
        """The parameters only the image-text contrastive term reaches: the text head
        (`ln_text`, `text_projection`), the temperature and the image tower's pooling head
        (`ln_post`, `proj`; the LM reads the unpooled tokens through the resampler)."""
        pooling = [p for name, p in self.visual.named_parameters() if name.split(".")[0] in ("ln_post", "proj")]
        return [*self.ln_text.parameters(), self.text_projection, self.logit_scale, *pooling]

    def text_embedding(self, text_hidden_BLD: Tensor, flat_index_N: Tensor, normalize: bool = True) -> Tensor:
        """Contrastive text embedding [N, output_dim] read at flat positions (the chunk ends)."""
        features_ND = self.ln_text(text_hidden_BLD.flatten(0, 1)[flat_index_N]) @ self.text_projection
        return F.normalize(features_ND, dim=-1) if normalize else features_ND
