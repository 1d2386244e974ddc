from __future__ import annotations

import open_clip
import pytest
import torch

from mmpretrain.data.tokenizer import Tokenizer


def test_matches_open_clip_tokenize_with_start_and_end_tokens():
    tokenizer = Tokenizer()
    texts = ["a photo of a red circle.", "Two blue squares!"]
    tokens = tokenizer(texts)
    assert tokens.shape == (2, 77) and tokens.dtype == torch.int64
    assert torch.equal(tokens, open_clip.tokenize(texts))
    assert (tokens[:, 0] == tokenizer.sot_token_id).all() and tokenizer.sot_token_id == 49406
    length = int((tokens[0] != 0).sum())
    assert tokens[0, length - 1] == tokenizer.eot_token_id == 49407
    assert (tokens[0, length:] == 0).all()
    assert tokenizer.decode(tokens[0]) == "a photo of a red circle ."


def test_truncation_keeps_end_token_and_context_length_is_configurable():
    tokenizer = Tokenizer(context_length=8)
    tokens = tokenizer("one two three four five six seven eight nine ten")
    assert tokens.shape == (1, 8)
    assert tokens[0, -1] == tokenizer.eot_token_id and (tokens[0] != 0).all()
    with pytest.raises(ValueError, match="context_length"):
        Tokenizer(context_length=1)
