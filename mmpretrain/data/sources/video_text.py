"""Video-text clips (video2dataset layout): `{key}.mp4`, `{key}.txt`, optional `{key}.json`.

Only the sampled frames are decoded (`data/video/pyav_decoder.py`). An image-text sample
(`jpg`/`png`/`webp` instead of `mp4`) in the same stream becomes a static clip (the image
repeated `num_frames` times), so joint image-text + video-text training is a shard mixture
(`train_shards: videos::images`, `train_weights`) through the one stateful `ShardStream`.

json keys used: `fps` (overrides the container's when the header is wrong) and, for the
temporal-order probe, `foil_caption`: the caption with its events in another order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mmpretrain.data.sources.image_text import ImageTextDecoder
from mmpretrain.data.tokenizer import Tokenizer
from mmpretrain.data.transforms import decode_image
from mmpretrain.data.video.frame_sampling import FrameSampler
from mmpretrain.data.video.pyav_decoder import decode_frames
from mmpretrain.data.video.transform import VideoTransform
from mmpretrain.data.sources.metadata import sample_metadata
from mmpretrain.data.wds.skips import SkipSample

FOIL_KEY = "foil_caption"


class VideoTextDecoder:
    """Raw sample -> `{"video": [T, 3, S, S], "caption": str, "foil": str | None, "key", "json"}`.

    Skips (as `SkipSample`): `missing_video` (neither video nor image member), `missing_caption`,
    `bad_json`, `decode_error` (unreadable video), `short_video` (fewer than `min_frames`).
    """

    def __init__(
        self,
        sampler: FrameSampler,
        transform: VideoTransform,
        tokenizer: Tokenizer,
        decode_threads: int = 1,
        min_frames: int = 1,
        video_keys: Sequence[str] = ("mp4", "webm", "mkv", "avi"),
        image_keys: Sequence[str] = ("jpg", "jpeg", "png", "webp"),
        text_key: str = "txt",
    ) -> None:
        if decode_threads < 1 or min_frames < 1:
            raise ValueError(f"need decode_threads >= 1 and min_frames >= 1, got {decode_threads}, {min_frames}")
        self.sampler, self.transform, self.tokenizer = sampler, transform, tokenizer
        self.decode_threads, self.min_frames = decode_threads, min_frames
        self.video_keys, self.image_keys, self.text_key = tuple(video_keys), tuple(image_keys), text_key

    def __call__(self, raw: dict[str, Any]) -> dict[str, Any]:
        caption = ImageTextDecoder._caption(raw.get(self.text_key))
        meta = sample_metadata(raw)
        foil = meta.get(FOIL_KEY)
        if foil is not None and not (isinstance(foil, str) and foil.strip()):
            raise SkipSample("bad_json", f"{FOIL_KEY} must be a non-empty string, got {foil!r}")
        video_bytes = next((raw[k] for k in self.video_keys if k in raw), None)
        if video_bytes is not None:
            frames_T3HW = self._decode_video(video_bytes, meta)
        else:
            image_bytes = next((raw[k] for k in self.image_keys if k in raw), None)
            if image_bytes is None:
                raise SkipSample("missing_video")
            image = torch.from_numpy(np.array(decode_image(image_bytes), dtype=np.uint8)).permute(2, 0, 1)
            frames_T3HW = image.unsqueeze(0).expand(self.sampler.num_frames, -1, -1, -1)
        return {"video": self.transform(frames_T3HW), "caption": caption, "foil": foil,
                "key": raw["__key__"], "json": meta}

    def _decode_video(self, data: bytes, meta: dict[str, Any]) -> torch.Tensor:
        meta_fps = meta.get("fps")
        meta_fps = float(meta_fps) if isinstance(meta_fps, (int, float)) and meta_fps > 0 else None

        # drawn from torch's generator, which Lightning seeds per DataLoader worker
        rng = random.Random(int(torch.randint(0, 2**62, ())))

        def pick(num_available: int, fps: float | None) -> list[int]:
            return self.sampler(num_available, meta_fps or fps, rng)

        return decode_frames(data, pick, self.decode_threads, self.min_frames).frames_T3HW

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """video [B, T, 3, S, S], text [B, L], key, caption, json; `foil_text` [B, L] when every
        sample of the batch carries a temporal-order foil caption."""
        captions = [s["caption"] for s in samples]
        batch = {
            "video": torch.stack([s["video"] for s in samples]),
            "text": self.tokenizer(captions),
            "key": [s["key"] for s in samples],
            "caption": captions,
            "json": [s["json"] for s in samples],
        }
        if all(s["foil"] is not None for s in samples):
            batch["foil_text"] = self.tokenizer([s["foil"] for s in samples])
        return batch
