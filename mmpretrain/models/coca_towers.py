"""CoCa towers: a ViT that also returns image tokens for the caption decoder, and a causal
text tower with an appended [CLS] token that also returns its token features.

Both extend the CLIP towers and keep open_clip's CoCa state-dict layout (``VisionTransformer``
with ``attentional_pool=True`` / ``output_tokens=True``, ``TextTransformer`` with
``embed_cls=True``), so open_clip CoCa checkpoints load 1:1.
"""

import torch
from torch import Tensor, nn

from mmpretrain.models.locking import lock_parameters, transformer_tail
from mmpretrain.models.text_transformer import TextTransformer
from mmpretrain.models.vision_transformer import VisionTransformer
from mmpretrain.nn.attention import AttentionBackendName
from mmpretrain.nn.cross_attention import AttentionalPooler


class CoCaVisionTransformer(VisionTransformer):
    """ViT whose output tokens are pooled by ``attn_pooler_queries`` learned queries.

    As in open_clip's CoCa: the transformer output goes through the attentional pooler
    (``attn_pool``, width ``output_dim``) and ``ln_post``; pooled query 0, projected by
    ``proj [output_dim, output_dim]``, is the contrastive embedding and the other queries are
    the image tokens ``[B, Q-1, output_dim]`` the decoder attends to. With
    ``attentional_pool=False`` the tokens are the ``ln_post``-normalised patch tokens
    ``[B, T, width]`` and the CLS token is projected (open_clip's ``coca_base``).
    """

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 32,
        width: int = 768,
        layers: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
        output_dim: int = 512,
        attn_backend: AttentionBackendName = "auto",
        grad_checkpointing: bool = False,
        patch_dropout: float = 0.0,
        attentional_pool: bool = True,
        attn_pooler_queries: int = 256,
        attn_pooler_heads: int = 8,
    ):
        super().__init__(image_size=image_size, patch_size=patch_size, width=width, layers=layers,
                         heads=heads, mlp_ratio=mlp_ratio, output_dim=output_dim,
                         attn_backend=attn_backend, grad_checkpointing=grad_checkpointing,
                         patch_dropout=patch_dropout)
        self.attentional_pool = attentional_pool
        self.attn_pooler_queries = attn_pooler_queries
        self.attn_pooler_heads = attn_pooler_heads
        if attentional_pool:
            if attn_pooler_queries < 2:
                raise ValueError("CoCaVisionTransformer: attn_pooler_queries must be >= 2 (one "
                                 f"contrastive query + image tokens), got {attn_pooler_queries}")
            self.attn_pool = AttentionalPooler(output_dim, width, heads=attn_pooler_heads,
                                               n_queries=attn_pooler_queries,
                                               attn_backend=attn_backend)
            self.ln_post = nn.LayerNorm(output_dim)
            self.proj = nn.Parameter(width ** -0.5 * torch.randn(output_dim, output_dim))
        else:
            self.attn_pool = None
        self.token_dim = output_dim if attentional_pool else width

    def forward_with_tokens(self, image_B3HW: Tensor) -> tuple[Tensor, Tensor]:
        """Images -> (contrastive features ``[B, output_dim]``, tokens ``[B, N, token_dim]``)."""
        if image_B3HW.ndim != 4 or tuple(image_B3HW.shape[1:]) != (
                3, self.image_size, self.image_size):
            raise ValueError(f"CoCaVisionTransformer expects images [B, 3, {self.image_size}, "
                             f"{self.image_size}], got {tuple(image_B3HW.shape)}")
        tokens_BTW = self.transformer(self.embed_tokens(image_B3HW))
        if self.attn_pool is not None:
            tokens_BTW = self.attn_pool(tokens_BTW)
        tokens_BTW = self.ln_post(tokens_BTW)
        return tokens_BTW[:, 0] @ self.proj, tokens_BTW[:, 1:]

    def pool(self, tokens_BTW: Tensor) -> Tensor:
        """Transformer output -> contrastive features (what ``forward`` returns)."""
        if self.attn_pool is not None:
            tokens_BTW = self.attn_pool(tokens_BTW)
        return self.ln_post(tokens_BTW[:, 0]) @ self.proj

    def lock(self, unlocked_blocks: int = 0, freeze_norms: bool = True) -> None:
        """As :meth:`VisionTransformer.lock`; the attentional pooler belongs to the head."""
        head = ["ln_post.", "proj"] + (["attn_pool."] if self.attn_pool is not None else [])
        lock_parameters(self, transformer_tail(self.transformer.layers, unlocked_blocks, head=head),
                        freeze_norms)


class CoCaTextTransformer(TextTransformer):
    """Causal text tower with a learned [CLS] token appended after the ``context_length`` text
    tokens; the CLS output (``ln_final``, ``text_projection``) is the contrastive embedding and
    the text-token outputs (no final norm) feed the caption decoder, as in open_clip's CoCa.

    Parameters: the :class:`TextTransformer` ones with ``positional_embedding
    [context_length + 1, W]``, plus ``cls_emb [W]``.

    Attention is causal and, as in open_clip, masks key positions derived from ``pad_id``:
    open_clip's default (``correct_cls_mask=False``, used to train its released CoCa weights)
    shifts that padding mask by one position, so the CLS token sees the first padding token
    and, when the text has padding, not itself; ``correct_cls_mask=True`` masks exactly the
    padding tokens. Text tokens are unaffected either way (they never see later positions).
    """

    def __init__(
        self,
        context_length: int = 76,
        vocab_size: int = 49408,
        width: int = 512,
        layers: int = 12,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        output_dim: int = 512,
        attn_backend: AttentionBackendName = "auto",
        grad_checkpointing: bool = False,
        pad_id: int = 0,
        correct_cls_mask: bool = False,
    ):
        super().__init__(context_length=context_length + 1, vocab_size=vocab_size, width=width,
                         layers=layers, heads=heads, mlp_ratio=mlp_ratio, output_dim=output_dim,
                         attn_backend=attn_backend, grad_checkpointing=grad_checkpointing)
        self.context_length = context_length  # text tokens; the CLS takes one more position
        self.pad_id = pad_id
        self.correct_cls_mask = correct_cls_mask
        self.cls_emb = nn.Parameter(torch.empty(width))
        nn.init.normal_(self.cls_emb, std=0.01)

    def forward(self, tokens_BL: Tensor) -> Tensor:
        """Token ids ``[B, L]`` (L <= context_length) -> CLS features ``[B, output_dim]``."""
        return self.forward_with_tokens(tokens_BL)[0]

    def forward_with_tokens(self, tokens_BL: Tensor) -> tuple[Tensor, Tensor]:
        """Token ids -> (CLS features ``[B, output_dim]``, token features ``[B, L, W]``)."""
        if tokens_BL.ndim != 2 or not 0 < tokens_BL.shape[1] <= self.context_length:
            raise ValueError(f"CoCaTextTransformer expects token ids [B, L] with 1 <= L <= "
                             f"context_length={self.context_length}, got {tuple(tokens_BL.shape)}")
        batch, length = tokens_BL.shape
        x_BLW = self.token_embedding(tokens_BL)
        cls_B1W = self.cls_emb.to(x_BLW.dtype).expand(batch, 1, -1)
        x_BSW = torch.cat([x_BLW, cls_B1W], dim=1)
        x_BSW = x_BSW + self.positional_embedding[:length + 1].to(x_BSW.dtype)
        x_BSW = self.transformer(x_BSW, key_padding_mask_BM=self._key_mask(tokens_BL))
        pooled_BW = self.ln_final(x_BSW[:, -1])
        return pooled_BW @ self.text_projection, x_BSW[:, :-1]

    def _key_mask(self, tokens_BL: Tensor) -> Tensor:
        """``[B, L+1]`` True = attendable key (see the class docstring for the two variants)."""
        real_BL = tokens_BL != self.pad_id
        always_B1 = torch.ones_like(real_BL[:, :1])
        parts = [real_BL, always_B1] if self.correct_cls_mask else [always_B1, real_BL]
        return torch.cat(parts, dim=1)

    def lock(self, unlocked_blocks: int = 0, freeze_norms: bool = True) -> None:
        """As :meth:`TextTransformer.lock`; the CLS embedding belongs to the head."""
        lock_parameters(self, transformer_tail(self.transformer.layers, unlocked_blocks,
                                               head=["ln_final.", "text_projection", "cls_emb"]),
                        freeze_norms)
