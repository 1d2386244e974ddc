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
    zero padded; too long texts are truncated and still end with `<end_of_text>`.

    `special_tokens` (e.g. `<image>`, `<|endofchunk|>`) get the ids after the base vocabulary,
    in order; `vocab_size` counts them. The BPE never produces them from text (a literal
    "<image>" in a document stays ordinary characters), so callers insert them by id."""

    def __init__(self, context_length: int = 77, special_tokens: Sequence[str] = ()) -> None:
        if context_length < 2:
            raise ValueError(f"context_length must hold at least start and end tokens, got {context_length}")
        if len(set(special_tokens)) != len(special_tokens):
            raise ValueError(f"special_tokens must be distinct, got {list(special_tokens)}")
        self.context_length = context_length
        self._bpe = SimpleTokenizer(context_length=context_length)
        clashes = [t for t in special_tokens if t in self._bpe.encoder]
        if clashes:
            raise ValueError(f"special_tokens {clashes} are already in the base vocabulary")
        self._special_ids = {token: self._bpe.vocab_size + i for i, token in enumerate(special_tokens)}

    @property
    def vocab_size(self) -> int:
        return self._bpe.vocab_size + len(self._special_ids)

    def special_token_id(self, token: str) -> int:
        if token not in self._special_ids:
            raise KeyError(f"{token!r} is not one of this tokenizer's special tokens {list(self._special_ids)}")
        return self._special_ids[token]

    def encode(self, text: str) -> list[int]:
        """BPE ids of `text` alone, without start/end tokens or padding."""
        self._bound_word_cache()
        return self._bpe.encode(text)

    def _bound_word_cache(self) -> None:
        if len(self._bpe.cache) > _MAX_WORD_CACHE:
            self._bpe.cache = {token: token for token in ("<start_of_text>", "<end_of_text>")}

    @property
    def sot_token_id(self) -> int:
        return self._bpe.sot_token_id

    @property
    def eot_token_id(self) -> int:
        return self._bpe.eot_token_id

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        self._bound_word_cache()
        return self._bpe(list(texts), self.context_length)

    def decode(self, tokens_L: torch.Tensor) -> str:
        """Text of one token row, without special tokens and padding."""
        ids = [int(t) for t in tokens_L]
        if self.eot_token_id in ids:
            ids = ids[: ids.index(self.eot_token_id)]
        base = self._bpe.vocab_size
        return self._bpe.decode([i for i in ids if i != self.sot_token_id and i < base]).strip()

    def __repr__(self) -> str:
        return f"Tokenizer(context_length={self.context_length})"
