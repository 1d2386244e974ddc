"""`VideoTextDataModule`: `WebDataModule` over video-text shards.

Everything stateful (shard plans, resume, skip counts, mixtures) is the parent's; this class
only swaps the per-sample decoder for `VideoTextDecoder`: strided random-offset frames for
training, uniform frames for validation. Image-text shards mixed into `train_shards`
(`videos::images` with `train_weights`) are decoded as static clips, giving joint
image-text + video-text batches.
"""

from __future__ import annotations

from typing import Literal

from mmpretrain.data.datamodule import WebDataModule
from mmpretrain.data.sources.video_text import VideoTextDecoder
from mmpretrain.data.video.frame_sampling import FrameSampler
from mmpretrain.data.video.transform import VideoTransform
from mmpretrain.data.wds.remote.options import ShardReadOptions


class VideoTextDataModule(WebDataModule):
    def __init__(
        self,
        train_shards: str | list[str] | None = None,
        val_shards: str | list[str] | None = None,
        train_weights: list[float] | None = None,
        batch_size: int = 32,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        mode: Literal["resampled", "exact"] = "resampled",
        samples_per_epoch: int | None = None,
        shuffle_buffer: int = 256,
        seed: int = 0,
        image_size: int = 224,
        crop_scale: tuple[float, float] = (0.9, 1.0),
        context_length: int = 77,
        persistent_workers: bool = True,
        pin_memory: bool | None = None,
        read_options: ShardReadOptions | None = None,
        num_frames: int = 8,
        frame_stride: int = 2,
        target_fps: float | None = None,
        min_frames: int = 1,
        decode_threads: int = 1,
    ) -> None:
        """`num_frames` per clip; training takes them `frame_stride` apart (or at `target_fps`
        when set) from a random offset, validation uniformly over the clip. Clips with fewer
        than `min_frames` frames are skipped (`short_video`). `decode_threads`: ffmpeg threads
        per DataLoader worker (1 unless workers are fewer than cores)."""
        super().__init__(train_shards=train_shards, val_shards=val_shards, train_weights=train_weights,
                         batch_size=batch_size, val_batch_size=val_batch_size, num_workers=num_workers,
                         mode=mode, samples_per_epoch=samples_per_epoch, shuffle_buffer=shuffle_buffer,
                         seed=seed, image_size=image_size, crop_scale=crop_scale,
                         context_length=context_length, persistent_workers=persistent_workers,
                         pin_memory=pin_memory, read_options=read_options)
        self.train_decoder = VideoTextDecoder(
            FrameSampler(num_frames, "strided", frame_stride, target_fps),
            VideoTransform(image_size, True, tuple(crop_scale)), self.tokenizer, decode_threads, min_frames)
        self.val_decoder = VideoTextDecoder(
            FrameSampler(num_frames, "uniform"), VideoTransform(image_size, train=False), self.tokenizer,
            decode_threads, min_frames)

    def zeroshot_prompts(self) -> None:
        """Video-text shards carry no class list; evaluation is retrieval and the order probe."""
        return None
