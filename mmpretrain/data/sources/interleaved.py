"""Interleaved image-text documents (OBELICS / MMC4-like): one `{key}.json` per document.

Schema: `{"texts": [...], "images": [...]}`, position-aligned lists of equal length with exactly
one non-null entry per position. A text entry is a string; an image entry is either the name
of another member of the same sample (`"img0.jpg"` for the tar member `{key}.img0.jpg`) or
`{"base64": "..."}` with the encoded image inline. Other json keys are kept as metadata.

Preprocessing (`InterleavedDocumentDecoder`): images whose shorter side is below
`min_image_size` are dropped, at most `max_images` are kept, each kept image becomes
`visual_tokens` `<image>` placeholder tokens, and an `<|endofchunk|>` token closes the text
chunk that follows each image (before the next image, or at the end). Token layout:

    <start_of_text> intro <image>*V caption 1 <|endofchunk|> <image>*V caption 2 <|endofchunk|> <end_of_text>

Documents longer than `max_length` tokens are cut at a chunk boundary or inside text, never
inside an image's placeholders. Skips (as `SkipSample`): `bad_json` (schema violated),
`missing_image` (a referenced member is absent or base64 is invalid), `decode_error`,
`no_image` (no image left after filtering; the contrastive loss needs one per document).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from mmpretrain.data.sources.metadata import sample_metadata
from mmpretrain.data.tokenizer import Tokenizer
from mmpretrain.data.transforms import ImageTransform, open_image
from mmpretrain.data.wds.skips import SkipSample

IMAGE_TOKEN = "<image>"
END_OF_CHUNK_TOKEN = "<|endofchunk|>"
SPECIAL_TOKENS = (IMAGE_TOKEN, END_OF_CHUNK_TOKEN)


def interleaved_tokenizer() -> Tokenizer:
    """The CLIP BPE with `<image>` and `<|endofchunk|>` appended to its vocabulary."""
    return Tokenizer(special_tokens=SPECIAL_TOKENS)


@dataclass
class InterleavedDocument:
    """One preprocessed document. Positions index `tokens`."""

    key: str
    tokens: list[int]
    is_text: list[bool]  # False on image placeholders
    images: list[torch.Tensor]  # [3, S, S] each, in document order
    image_starts: list[int]  # first placeholder position of each image
    chunk_ends: list[int]  # position of the <|endofchunk|> closing each image's chunk
    captions: list[list[int]]  # each image's chunk: its text ids, then <|endofchunk|>
    dropped_small: int = 0
    dropped_over_cap: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tokens)


def parse_document(meta: dict[str, Any]) -> list[tuple[str, Any]]:
    """[("text", str) | ("image", ref), ...] in document order; SkipSample("bad_json") on a
    schema violation."""
    texts, images = meta.get("texts"), meta.get("images")
    if not isinstance(texts, list) or not isinstance(images, list) or len(texts) != len(images):
        raise SkipSample("bad_json", "expected position-aligned lists `texts` and `images` of equal length")
    items: list[tuple[str, Any]] = []
    for position, (text, image) in enumerate(zip(texts, images)):
        if (text is None) == (image is None):
            raise SkipSample("bad_json", f"position {position} must hold exactly one of a text and an image")
        if text is not None:
            if not isinstance(text, str):
                raise SkipSample("bad_json", f"texts[{position}] is not a string")
            items.append(("text", text))
        elif isinstance(image, str) or (isinstance(image, dict) and isinstance(image.get("base64"), str)):
            items.append(("image", image))
        else:
            raise SkipSample("bad_json", f"images[{position}] must be a member name or {{\"base64\": str}}")
    return items


class InterleavedDocumentDecoder:
    """Raw sample -> `InterleavedDocument` (see the module docstring for the preprocessing).

    `collate` is the batch function a `ShardStream` applies to decoded documents
    (`data.packing.InterleavedCollator`)."""

    def __init__(
        self,
        transform: ImageTransform,
        tokenizer: Tokenizer,
        visual_tokens: int = 8,
        max_images: int = 5,
        min_image_size: int = 16,
        max_length: int = 256,
        collate: Callable[[list[InterleavedDocument]], dict] | None = None,
    ) -> None:
        if visual_tokens < 1 or max_images < 1 or min_image_size < 1:
            raise ValueError(f"visual_tokens, max_images and min_image_size must be >= 1, got "
                             f"{visual_tokens}, {max_images}, {min_image_size}")
        if max_length < visual_tokens + 4:
            raise ValueError(f"max_length {max_length} cannot hold one image of {visual_tokens} "
                             "placeholders with its start, end-of-chunk and end tokens")
        self.transform, self.tokenizer = transform, tokenizer
        self.visual_tokens, self.max_images = visual_tokens, max_images
        self.min_image_size, self.max_length = min_image_size, max_length
        self.collate = collate
        self.image_token_id = tokenizer.special_token_id(IMAGE_TOKEN)
        self.end_of_chunk_id = tokenizer.special_token_id(END_OF_CHUNK_TOKEN)

    def __call__(self, raw: dict[str, Any]) -> InterleavedDocument:
        meta = sample_metadata(raw)
        items = parse_document(meta)
        doc = InterleavedDocument(raw["__key__"], [self.tokenizer.sot_token_id], [True], [], [], [], [],
                                  meta={k: v for k, v in meta.items() if k not in ("texts", "images")})
        budget = self.max_length - 1  # the end-of-text token always fits
        for kind, value in items:
            if kind == "image":
                image = self._load_image(raw, value, doc)
                if image is None:
                    continue
                closing = 1 if doc.images else 0
                if len(doc.tokens) + closing + self.visual_tokens + 1 > budget:
                    break
                self._close_chunk(doc)
                doc.image_starts.append(len(doc.tokens))
                doc.tokens += [self.image_token_id] * self.visual_tokens
                doc.is_text += [False] * self.visual_tokens
                doc.images.append(image)
                doc.captions.append([])
            else:
                room = budget - len(doc.tokens) - (1 if doc.images else 0)
                ids = self.tokenizer.encode(value)[:max(room, 0)]
                doc.tokens += ids
                doc.is_text += [True] * len(ids)
                if doc.images:
                    doc.captions[-1] += ids
                if len(ids) == room:
                    break
        if not doc.images:
            raise SkipSample("no_image")
        self._close_chunk(doc)
        doc.tokens.append(self.tokenizer.eot_token_id)
        doc.is_text.append(True)
        return doc

    def _close_chunk(self, doc: InterleavedDocument) -> None:
        if len(doc.chunk_ends) < len(doc.images):
            doc.chunk_ends.append(len(doc.tokens))
            doc.tokens.append(self.end_of_chunk_id)
            doc.is_text.append(True)
            doc.captions[-1].append(self.end_of_chunk_id)

    def _load_image(self, raw: dict[str, Any], ref: Any, doc: InterleavedDocument) -> torch.Tensor | None:
        if isinstance(ref, str):
            data = raw.get(ref.lower())
            if data is None:
                raise SkipSample("missing_image", f"no member {ref!r} in sample {raw['__key__']!r}")
        else:
            try:
                data = base64.b64decode(ref["base64"], validate=True)
            except (binascii.Error, ValueError) as exn:
                raise SkipSample("missing_image", f"invalid base64 image: {exn}") from exn
        if min(open_image(data, self.transform.max_pixels).size) < self.min_image_size:
            doc.dropped_small += 1
            return None
        if len(doc.images) >= self.max_images:
            doc.dropped_over_cap += 1
            return None
        return self.transform.load(data)
