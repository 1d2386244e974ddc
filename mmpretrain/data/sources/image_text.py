"""Image-text pairs (img2dataset layout): `{key}.jpg|png|webp`, `{key}.txt`, optional `{key}.json`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mmpretrain.data.tokenizer import Tokenizer
from mmpretrain.data.transforms import ImageTransform
from mmpretrain.data.sources.metadata import sample_metadata
from mmpretrain.data.wds.skips import SkipSample


class ImageTextDecoder:
    """Raw sample -> `{"image": [3, H, W], "caption": str, "label": int, "key": str, "json": dict}`.

    Skips (as `SkipSample`): `missing_image`, `missing_caption` (absent or blank), `bad_json`
    (not a JSON object, or a non-integer `label`), `decode_error` / `too_many_pixels` (image).
    `label` is the json `label` (index into classes.json), -1 when absent. The caption stays a
    string until `collate`, which tokenizes the whole batch at once.
    """

    def __init__(
        self,
        transform: ImageTransform,
        tokenizer: Tokenizer,
        image_keys: Sequence[str] = ("jpg", "jpeg", "png", "webp"),
        text_key: str = "txt",
    ) -> None:
        self.transform = transform
        self.tokenizer = tokenizer
        self.image_keys = tuple(image_keys)
        self.text_key = text_key

    def __call__(self, raw: dict[str, Any]) -> dict[str, Any]:
        image_bytes = next((raw[k] for k in self.image_keys if k in raw), None)
        if image_bytes is None:
            raise SkipSample("missing_image")
        caption = self._caption(raw.get(self.text_key))
        meta = sample_metadata(raw)
        label = meta.get("label", -1)
        if isinstance(label, bool) or not isinstance(label, int):
            raise SkipSample("bad_json", f"label {label!r} is not an integer")
        image = self.transform.load(image_bytes)
        return {"image": image, "caption": caption, "label": label, "key": raw["__key__"], "json": meta}

    @staticmethod
    def _caption(data: bytes | None) -> str:
        if data is None:
            raise SkipSample("missing_caption")
        try:
            caption = data.decode("utf-8").strip()
        except UnicodeDecodeError as exn:
            raise SkipSample("decode_error", f"caption is not UTF-8: {exn}") from exn
        if not caption:
            raise SkipSample("missing_caption")
        return caption

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """Batch dict per CONTRACTS.md: image [B, 3, H, W], text [B, L], label [B], key, plus the
        raw `caption` and `json` lists for later text/selection stages."""
        captions = [s["caption"] for s in samples]
        return {
            "image": torch.stack([s["image"] for s in samples]),
            "text": self.tokenizer(captions),
            "label": torch.tensor([s["label"] for s in samples], dtype=torch.int64),
            "key": [s["key"] for s in samples],
            "caption": captions,
            "json": [s["json"] for s in samples],
        }
