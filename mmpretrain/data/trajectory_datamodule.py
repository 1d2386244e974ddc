"""`TrajectoryDataModule`: trajectory-window shards through `WebDataModule`'s stateful streams.

Only the decoders differ from image-text: shard specs, mixtures (`train_shards: "human::idm"`
with `train_weights`), resampled/exact modes, mid-epoch resume and skip counting are the
parent's. Validation reads windows uncropped-at-random (first `window` frames) and always
with the true labels it holds.
"""

from __future__ import annotations

from typing import Literal

from mmpretrain.data.datamodule import WebDataModule
from mmpretrain.data.sources.action_space import ActionSpace
from mmpretrain.data.sources.trajectory import TrajectoryDecoder
from mmpretrain.data.wds.remote.options import ShardReadOptions


class TrajectoryDataModule(WebDataModule):
    def __init__(
        self,
        action_space: ActionSpace,
        train_shards: str | list[str] | None = None,
        val_shards: str | list[str] | None = None,
        train_weights: list[float] | None = None,
        window: int | None = None,
        min_confidence: float = 0.0,
        batch_size: int = 32,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        mode: Literal["resampled", "exact"] = "resampled",
        samples_per_epoch: int | None = None,
        shuffle_buffer: int = 256,
        seed: int = 0,
        persistent_workers: bool = True,
        pin_memory: bool | None = None,
        read_options: ShardReadOptions | None = None,
    ) -> None:
        """`window`: frames per training sample (a random crop of the stored window; None =
        the whole stored window). `min_confidence`: train steps whose label confidence is
        lower are masked out of the loss (human labels have confidence 1); steps of
        confidence 0 carry no label and are always masked."""
        super().__init__(train_shards=train_shards, val_shards=val_shards, train_weights=train_weights,
                         batch_size=batch_size, val_batch_size=val_batch_size, num_workers=num_workers,
                         mode=mode, samples_per_epoch=samples_per_epoch, shuffle_buffer=shuffle_buffer,
                         seed=seed, persistent_workers=persistent_workers, pin_memory=pin_memory, read_options=read_options)
        self.action_space = action_space
        self.train_decoder = TrajectoryDecoder(action_space, window, random_crop=True,
                                               min_confidence=min_confidence)
        self.val_decoder = TrajectoryDecoder(action_space, window, random_crop=False)

    def zeroshot_prompts(self) -> None:
        """Trajectory data has no class prompts."""
        return None
