"""Hugging Face text tower: open_clip's own ``HFTextEncoder`` (the *wrapped* towers), built
offline from a model config in the local HF cache (or a local file), weights left to the
open_clip checkpoint. The state-dict layout is open_clip's (``transformer.*``, ``proj.*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from torch import Tensor, nn

HFPooler = Literal["mean_pooler", "max_pooler", "cls_pooler", "cls_last_hidden_state_pooler"]


def load_hf_config(model_name: str, config: str | None = None):
    """The transformers config of ``model_name``: from ``config`` (a config.json or a folder
    holding one) or the local HF cache only; a clear error when it is not there."""
    from transformers import AutoConfig

    source = config if config is not None else model_name
    if config is not None and not Path(config).exists():
        raise FileNotFoundError(f"HF text tower {model_name!r}: config {config} not found")
    try:
        return AutoConfig.from_pretrained(source, local_files_only=True)
    except OSError as err:
        raise FileNotFoundError(
            f"HF text tower {model_name!r}: config.json is not in the local Hugging Face cache "
            f"(mmpretrain never downloads at run time); fetch it beforehand with "
            f"`huggingface-cli download {model_name} config.json` or pass config=PATH") from err


class HFTextTower(nn.Module):
    """``transformers.AutoModel`` (the encoder of an encoder-decoder) -> pooler -> projection,
    exactly as open_clip's ``HFTextEncoder`` with ``hf_model_pretrained=False`` (its pooler
    classes, its parameter names; open_clip and transformers are imported only when built).

    ``proj_type``: 'linear', 'mlp' or None (identity when the width equals ``output_dim``).
    ``pooler_type``: open_clip's poolers; padding (``config.pad_token_id``) is masked.
    ``tokenizer_name``: recorded for export (open_clip's ``hf_tokenizer_name``).
    """

    def __init__(
        self,
        model_name: str,
        output_dim: int = 512,
        proj_type: Literal["linear", "mlp"] | None = "mlp",
        pooler_type: HFPooler = "mean_pooler",
        output_tokens: bool = False,
        config: str | None = None,
        tokenizer_name: str | None = None,
    ):
        from open_clip.hf_configs import arch_dict
        from open_clip.hf_model import _POOLERS
        from transformers import AutoModel

        super().__init__()
        hf_config = load_hf_config(model_name, config)
        if hf_config.model_type not in arch_dict:
            raise ValueError(f"HF text tower {model_name!r}: model type {hf_config.model_type!r} "
                             f"is not one open_clip supports ({sorted(arch_dict)})")
        self.model_name, self.config_path, self.tokenizer_name = model_name, config, tokenizer_name
        self.proj_type, self.pooler_type = proj_type, pooler_type
        self.output_tokens = output_tokens
        self.output_dim = output_dim
        self.config = hf_config
        if getattr(hf_config, "is_encoder_decoder", False):
            self.transformer = AutoModel.from_config(hf_config).encoder
        else:
            self.transformer = AutoModel.from_config(
                hf_config, add_pooling_layer=pooler_type == "cls_pooler")
        self.vocab_size = getattr(hf_config, "vocab_size", 0)
        self.context_length = getattr(hf_config, "max_position_embeddings", 0)
        self.pad_id = hf_config.pad_token_id
        self.pooler = _POOLERS[pooler_type]()
        self.width = getattr(hf_config, arch_dict[hf_config.model_type]["config_names"]["width"])
        if self.width == output_dim and proj_type is None:
            self.proj = nn.Identity()
        elif proj_type == "linear":
            self.proj = nn.Linear(self.width, output_dim, bias=False)
        elif proj_type == "mlp":
            hidden = (self.width + output_dim) // 2
            self.proj = nn.Sequential(nn.Linear(self.width, hidden, bias=False), nn.GELU(),
                                      nn.Linear(hidden, output_dim, bias=False))
        else:
            raise ValueError(f"HF text tower {model_name!r}: proj_type=None needs output_dim == "
                             f"the model width {self.width}, got {output_dim}")

    def forward(self, tokens_BL: Tensor) -> Tensor:
        return self.forward_with_tokens(tokens_BL)[0]

    def forward_with_tokens(self, tokens_BL: Tensor) -> tuple[Tensor, Tensor]:
        """(pooled projection ``[B, output_dim]``, token features ``[B, L', W]``); L' drops the
        CLS position for the CLS pooler, as open_clip's CoCa reads them."""
        attn_mask_BL = (tokens_BL != self.config.pad_token_id).long()
        out = self.transformer(input_ids=tokens_BL, attention_mask=attn_mask_BL)
        projected_BD = self.proj(self.pooler(out, attn_mask_BL))
        hidden_BLW = out.last_hidden_state
        if type(self.pooler).__name__ == "ClsPooler":
            hidden_BLW = hidden_BLW[:, 1:]
        return projected_BD, hidden_BLW

    def lock(self, unlocked_blocks: int = 0, freeze_norms: bool = True) -> None:
        """open_clip's ``HFTextEncoder.lock``: freeze the embeddings and all but the last
        ``unlocked_blocks`` layers (LayerNorms stay trainable with ``freeze_norms=False``)."""
        from open_clip.hf_model import HFTextEncoder

        HFTextEncoder.lock(self, unlocked_blocks, freeze_norms)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.transformer.gradient_checkpointing_enable()
