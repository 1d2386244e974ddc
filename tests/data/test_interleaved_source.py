"""Interleaved document decoding: schema, image filters, placeholders, chunks, truncation, skips."""

from __future__ import annotations

import base64
import io
import json

import pytest
import torch
from PIL import Image

from mmpretrain.data.sources.interleaved import (
    END_OF_CHUNK_TOKEN,
    IMAGE_TOKEN,
    InterleavedDocumentDecoder,
    interleaved_tokenizer,
)
from mmpretrain.data.transforms import ImageTransform
from mmpretrain.data.wds.skips import SkipSample

TOKENIZER = interleaved_tokenizer()
IMG, EOC = TOKENIZER.special_token_id(IMAGE_TOKEN), TOKENIZER.special_token_id(END_OF_CHUNK_TOKEN)


def _jpeg(size: int, colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, format="JPEG")
    return out.getvalue()


def _raw(texts, images, **members) -> dict:
    return {"__key__": "doc", "json": json.dumps({"texts": texts, "images": images, "url": "u"}).encode(),
            **members}


def _decoder(**kwargs) -> InterleavedDocumentDecoder:
    return InterleavedDocumentDecoder(ImageTransform(32, train=False), TOKENIZER, **kwargs)


def test_special_tokens_extend_the_vocabulary_and_never_come_from_text():
    assert (IMG, EOC) == (49408, 49409) and TOKENIZER.vocab_size == 49410
    assert IMG not in TOKENIZER.encode("<image> a red circle <|endofchunk|>")
    assert TOKENIZER.decode(torch.tensor([TOKENIZER.sot_token_id, IMG, *TOKENIZER.encode("a cat"), EOC])) == "a cat"
    with pytest.raises(KeyError, match="special tokens"):
        TOKENIZER.special_token_id("<video>")


def test_layout_placeholders_chunks_and_filters():
    raw = _raw(["intro words", None, None, "a red square", None, None, "the end"],
               [None, "img0.jpg", "icon.jpg", None, {"base64": base64.b64encode(_jpeg(32)).decode()},
                "img1.jpg", None],
               **{"img0.jpg": _jpeg(40), "icon.jpg": _jpeg(8), "img1.jpg": _jpeg(32)})
    doc = _decoder(visual_tokens=3, max_images=2, min_image_size=16)(raw)
    intro, caption, end = (TOKENIZER.encode(t) for t in ("intro words", "a red square", "the end"))
    expected = ([TOKENIZER.sot_token_id] + intro + [IMG] * 3 + caption + [EOC] + [IMG] * 3 + end + [EOC]
                + [TOKENIZER.eot_token_id])
    assert doc.tokens == expected
    assert doc.is_text == [t != IMG for t in expected]
    assert (doc.dropped_small, doc.dropped_over_cap) == (1, 1) and len(doc.images) == 2
    assert doc.images[0].shape == (3, 32, 32)
    assert doc.image_starts == [1 + len(intro), 1 + len(intro) + 3 + len(caption) + 1]
    assert [doc.tokens[i] for i in doc.chunk_ends] == [EOC, EOC]
    assert doc.captions == [caption + [EOC], end + [EOC]]
    assert doc.meta == {"url": "u"}


def test_truncation_never_cuts_an_image_and_keeps_end_token():
    words = " ".join(["shape"] * 30)
    raw = _raw([None, words, None, "more"], ["a.jpg", None, "b.jpg", None], **{"a.jpg": _jpeg(32), "b.jpg": _jpeg(32)})
    doc = _decoder(visual_tokens=4, max_length=20)(raw)
    assert len(doc) == 20 and doc.tokens[-1] == TOKENIZER.eot_token_id and doc.tokens[-2] == EOC
    assert len(doc.images) == 1 and doc.tokens.count(IMG) == 4
    doc = _decoder(visual_tokens=4, max_length=40)(_raw([None, "one two", None, words], ["a.jpg", None, "b.jpg", None],
                                                        **{"a.jpg": _jpeg(32), "b.jpg": _jpeg(32)}))
    assert len(doc) == 40 and doc.tokens.count(IMG) == 8 and doc.tokens[-2:] == [EOC, TOKENIZER.eot_token_id]


@pytest.mark.parametrize("texts, images, members, reason", [
    (["a"], [None, "x.jpg"], {}, "bad_json"),
    (["a", "b"], ["x.jpg", None], {}, "bad_json"),
    ([None], [7], {}, "bad_json"),
    ([None, "a"], ["x.jpg", None], {}, "missing_image"),
    ([None, "a"], [{"base64": "%%%"}, None], {}, "missing_image"),
    ([None, "a"], ["x.jpg", None], {"x.jpg": _jpeg(8)}, "no_image"),
    ([None, "a"], ["x.jpg", None], {"x.jpg": b"not an image"}, "decode_error"),
])
def test_bad_documents_are_skipped_with_a_reason(texts, images, members, reason):
    with pytest.raises(SkipSample) as info:
        _decoder()(_raw(texts, images, **members))
    assert info.value.reason == reason
