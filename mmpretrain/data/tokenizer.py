"""CLIP BPE tokenizer: open_clip's `SimpleTokenizer` with its bundled vocabulary (offline)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from open_clip.tokenizer import SimpleTokenizer

# SimpleTokenizer memoises the BPE split of every distinct word forever; on web-scale
# captions (URLs, hashes, typos) that grows without bound inside long-lived workers.
_MAX_WORD_CACHE = 200_000


class Tokenizer:
    """Texts -> int64 token ids [B, context_length]: `<start_of_text>` ... `<end_of_text>`,
    zero padded; too long texts are truncated and still end with `<end_of_text>`."""

    def __init__(self, context_length: int = 77) -> None:
        if context_length < 2:
            raise ValueError(f"context_length must hold at least start and end tokens, got {context_length}")
        self.context_length = context_length
        self._bpe = SimpleTokenizer(context_length=context_length)

    @property
    def vocab_size(self) -> int:
        return self._bpe.vocab_size

    @property
    def sot_token_id(self) -> int:
        return self._bpe.sot_token_id

    @property
    def eot_token_id(self) -> int:
        return self._bpe.eot_token_id

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        if len(self._bpe.cache) > _MAX_WORD_CACHE:
            self._bpe.cache = {token: token for token in ("<start_of_text>", "<end_of_text>")}
        return self._bpe(list(texts), self.context_length)

    def decode(self, tokens_L: torch.Tensor) -> str:
        """Text of one token row, without special tokens and padding."""
        ids = [int(t) for t in tokens_L]
        if self.eot_token_id in ids:
            ids = ids[: ids.index(self.eot_token_id)]
        return self._bpe.decode([i for i in ids if i != self.sot_token_id]).strip()

    def __repr__(self) -> str:
        return f"Tokenizer(context_length={self.context_length})"
