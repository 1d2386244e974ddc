"""Tokenizers: CLIP BPE (open_clip's `SimpleTokenizer`, bundled vocabulary) and a model's Hugging Face
tokenizer from local files; both offline."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from mmpretrain.data.open_clip_bpe import SimpleTokenizer

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


class HFTokenizer:
    """A model's Hugging Face tokenizer (SigLIP's sentencepiece, mT5, XLM-R, BERT ...) with
    open_clip's ``HFTokenizer`` behaviour (text cleaning, ``max_length`` padding, optional
    SEP stripping), read from local files only: a folder, or a hub repo in the local HF cache.
    Same interface as :class:`Tokenizer` (call, ``encode``, ``decode``, token ids)."""

    def __init__(self, name: str, context_length: int = 64, clean: str = "whitespace",
                 strip_sep_token: bool = False, language: str | None = None,
                 tokenizer_mode: str | None = None) -> None:
        from open_clip.tokenizer import HFTokenizer as OpenClipHFTokenizer

        self.name, self.context_length = name, context_length
        try:
            self._hf = OpenClipHFTokenizer(name, context_length=context_length, clean=clean,
                                           strip_sep_token=strip_sep_token, language=language,
                                           tokenizer_mode=tokenizer_mode, local_files_only=True)
        except (OSError, ValueError) as err:
            raise FileNotFoundError(
                f"tokenizer {name!r}: its files (tokenizer.json or spiece.model / vocab files, "
                f"tokenizer_config.json) are not in {name if os.path.isdir(name) else 'the local Hugging Face cache'}; "
                f"mmpretrain never downloads at run time: run `huggingface-cli download {name}` "
                f"beforehand ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
            ) from err
        self._tok = self._hf.tokenizer

    @property
    def vocab_size(self) -> int:
        return len(self._tok)

    @property
    def sot_token_id(self) -> int | None:
        return self._tok.bos_token_id if self._tok.bos_token_id is not None else self._tok.cls_token_id

    @property
    def eot_token_id(self) -> int | None:
        return self._tok.eos_token_id if self._tok.eos_token_id is not None else self._tok.sep_token_id

    @property
    def pad_token_id(self) -> int:
        return self._tok.pad_token_id or 0

    def special_token_id(self, token: str) -> int:
        raise KeyError(f"{token!r}: {self.name} tokenizer has no mmpretrain special tokens")

    def encode(self, text: str) -> list[int]:
        """Ids of `text` alone, without special tokens or padding."""
        return self._tok.encode(text, add_special_tokens=False)

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        return self._hf([texts] if isinstance(texts, str) else list(texts), self.context_length)

    def decode(self, tokens_L: torch.Tensor) -> str:
        return self._tok.decode([int(t) for t in tokens_L], skip_special_tokens=True).strip()

    def __repr__(self) -> str:
        return f"HFTokenizer({self.name!r}, context_length={self.context_length})"
