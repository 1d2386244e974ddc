"""CoCa (Yu et al. 2022): a contrastive two-tower model with a captioning decoder."""

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.models.clip import CLIP
from mmpretrain.models.coca_towers import CoCaTextTransformer
from mmpretrain.models.text_decoder import MultimodalTextDecoder

log = logging.getLogger(__name__)

# open_clip / CLIP BPE ids, as written by mmpretrain.data.tokenizer.Tokenizer.
SOT_TOKEN_ID = 49406
EOT_TOKEN_ID = 49407


class CoCa(CLIP):
    """:class:`CLIP` (image tower ``visual``, text tower ``text``, ``logit_scale``, optional
    ``logit_bias``) + ``text_decoder``, a :class:`MultimodalTextDecoder` that reads the text
    tower's token features and cross-attends to the image tower's tokens.

    The towers must provide ``forward_with_tokens`` (see ``models/coca_towers.py``); their
    ``forward`` gives the contrastive embeddings, so ``encode_image`` / ``encode_text`` (and
    with them zero-shot and retrieval evaluation) work as for CLIP. The state dict is
    open_clip's ``CoCa`` layout.

    :meth:`forward` adds, to CLIP's outputs, the teacher-forced next-token ``caption_logits``
    and their targets ``caption_labels`` (from ``text[:, 1:]``). ``pack_caption_logits=True``
    keeps only the positions whose label is not the text tower's ``pad_id``: logits ``[N, V]``
    and labels ``[N]`` (row-major order), which skips the vocabulary projection of padding,
    most of a step's compute on short captions; ``False`` returns open_clip's ``[B, L-1, V]``
    and ``[B, L-1]`` (padding labels included; the loss ignores them). Both give the same loss.
    """

    def __init__(
        self,
        vision: nn.Module,
        text: nn.Module,
        decoder: MultimodalTextDecoder,
        init_logit_scale: float = math.log(1 / 0.07),
        init_logit_bias: float | None = None,
        max_logit_scale: float | None = 100.0,
        lock_image: bool = False,
        lock_image_unlocked_blocks: int = 0,
        lock_text: bool = False,
        lock_text_unlocked_blocks: int = 0,
        lock_freeze_norms: bool = True,
        pack_caption_logits: bool = True,
    ):
        for tower, name in ((vision, "vision"), (text, "text")):
            if not callable(getattr(tower, "forward_with_tokens", None)):
                raise ValueError(f"CoCa: the {name} tower {type(tower).__name__} has no "
                                 "forward_with_tokens(); use CoCaVisionTransformer / "
                                 "CoCaTextTransformer (mmpretrain.models)")
        token_dim = getattr(vision, "token_dim", None)
        if token_dim != decoder.width or text.width != decoder.width:
            raise ValueError(f"CoCa: decoder width {decoder.width} must equal the image token "
                             f"width ({token_dim}: output_dim with attentional pooling, else the "
                             f"ViT width) and the text tower width ({text.width})")
        if decoder.vocab_size != text.vocab_size and isinstance(text, CoCaTextTransformer):
            raise ValueError(f"CoCa: decoder vocab_size {decoder.vocab_size} must equal the text "
                             f"tower's vocab_size {text.vocab_size}")
        if decoder.vocab_size != text.vocab_size:
            # open_clip's coca_roberta-ViT-B-32 is built like this (its decoder keeps CLIP's
            # 49408 ids): captions with larger token ids cannot be trained with it
            log.warning("CoCa: decoder vocab_size %d differs from the text tower's vocab_size %d",
                        decoder.vocab_size, text.vocab_size)
        if decoder.context_length < text.context_length - 1 and isinstance(text, CoCaTextTransformer):
            raise ValueError(f"CoCa: decoder context_length {decoder.context_length} must be >= "
                             f"text context_length - 1 = {text.context_length - 1}")
        super().__init__(vision, text, init_logit_scale=init_logit_scale,
                         init_logit_bias=init_logit_bias, max_logit_scale=max_logit_scale,
                         lock_image=lock_image,
                         lock_image_unlocked_blocks=lock_image_unlocked_blocks,
                         lock_text=lock_text, lock_text_unlocked_blocks=lock_text_unlocked_blocks,
                         lock_freeze_norms=lock_freeze_norms)
        self.text_decoder = decoder
        self.pack_caption_logits = pack_caption_logits

    def encode_image(self, image_B3HW: Tensor, normalize: bool = True) -> Tensor:
        """As open_clip's ``CoCa.encode_image``: normalised unless ``normalize=False``."""
        return super().encode_image(image_B3HW, normalize=normalize)

    def encode_text(self, tokens_BL: Tensor, normalize: bool = True) -> Tensor:
        """As open_clip's ``CoCa.encode_text``: normalised unless ``normalize=False``."""
        return super().encode_text(tokens_BL, normalize=normalize)

    def forward(self, image: Tensor, text: Tensor) -> dict[str, Tensor | None]:
        image_feats_BD, image_tokens_BNW = self.visual.forward_with_tokens(image)
        text_feats_BD, text_tokens_BLW = self.text.forward_with_tokens(text)
        hidden_BLW = self.text_decoder.features(image_tokens_BNW, text_tokens_BLW[:, :-1])
        labels_BL = text[:, 1:]
        if self.pack_caption_logits:
            is_label_BL = labels_BL != self.text.pad_id
            hidden_NW, labels_N = hidden_BLW[is_label_BL], labels_BL[is_label_BL]
            logits, labels = hidden_NW @ self.text_decoder.text_projection, labels_N
        else:
            logits, labels = hidden_BLW @ self.text_decoder.text_projection, labels_BL
        return {
            "image_features": F.normalize(image_feats_BD, dim=-1),
            "text_features": F.normalize(text_feats_BD, dim=-1),
            "logit_scale": self.scale(),
            "logit_bias": self.logit_bias,
            "caption_logits": logits,
            "caption_labels": labels,
        }

    def caption_logits(self, image_tokens_BNW: Tensor, tokens_BL: Tensor) -> Tensor:
        """Next-token logits ``[B, L, V]`` after every prefix of ``tokens_BL``."""
        return self.text_decoder(image_tokens_BNW, self.text.forward_with_tokens(tokens_BL)[1])

    @torch.no_grad()
    def generate(self, image: Tensor, max_len: int = 30, sot_token_id: int = SOT_TOKEN_ID,
                 eot_token_id: int = EOT_TOKEN_ID, pad_token_id: int = 0) -> Tensor:
        """Greedy captions ``[B, <= max_len]``: ``<sot>`` then the argmax token until
        ``<eot>``; rows that finished early are padded with ``pad_token_id``."""
        max_len = min(max_len, self.text.context_length)
        if max_len < 2:
            raise ValueError(f"CoCa.generate: max_len must be >= 2, got {max_len}")
        image_tokens_BNW = self.visual.forward_with_tokens(image)[1]
        tokens_BT = torch.full((image.shape[0], 1), sot_token_id, dtype=torch.long,
                               device=image.device)
        finished_B = torch.zeros(image.shape[0], dtype=torch.bool, device=image.device)
        while tokens_BT.shape[1] < max_len and not bool(finished_B.all()):
            next_B = self.caption_logits(image_tokens_BNW, tokens_BT)[:, -1].argmax(dim=-1)
            if tokens_BT.shape[1] == max_len - 1:
                next_B = torch.full_like(next_B, eot_token_id)  # the caption must end
            next_B = next_B.masked_fill(finished_B, pad_token_id)
            finished_B |= next_B == eot_token_id
            tokens_BT = torch.cat([tokens_BT, next_B[:, None]], dim=1)
        return tokens_BT
