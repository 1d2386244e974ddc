"""`WebDataModule`: image-text WebDataset shards for Lightning, resumable mid-epoch.

Train streams are `ShardStream`s in `resampled` or `exact` mode; validation always reads
every val sample exactly once across ranks (exact mode, no shuffling, partial last batch;
ranks may then differ by a batch, which is harmless as validation steps run no collectives).

Epochs: Lightning calls `set_epoch` on a DataLoader's sampler at each epoch start; the
placeholder sampler of an iterable-dataset DataLoader is given the stream's `set_epoch`, and
the stream keeps its epoch in shared memory so persistent workers see it too.

Checkpoints: `on_before_batch_transfer` strips `_data_state` from each batch and records it;
`state_dict` gathers every rank's delivered train-stream state (so it must be called on all
ranks, as Lightning's checkpointing does) and `load_state_dict` hands each rank its own.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any, Literal

import torch
import torch.distributed as dist
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from mmpretrain.data.model_preprocess import image_transform_kwargs, tokenizer_for
from mmpretrain.data.sampling.exchange import StoreExchange
from mmpretrain.data.sampling.selection import BatchSelection, SuperBatchSelector
from mmpretrain.data.sources.image_text import ImageTextDecoder
from mmpretrain.data.tokenizer import Tokenizer
from mmpretrain.data.transforms import ImageTransform
from mmpretrain.data.wds.dataset import ShardStream, resolve_rank_world
from mmpretrain.data.wds.remote.locations import is_remote, parent_of, redact
from mmpretrain.data.wds.remote.options import ShardReadOptions
from mmpretrain.data.wds.remote.sizes import fetch_optional
from mmpretrain.data.wds.shard_spec import ShardSpec, parse_shard_spec
from mmpretrain.data.wds.skips import SkipCounter

CLASSES_FILENAME = "classes.json"


class WebDataModule(LightningDataModule):
    def __init__(
        self,
        train_shards: str | list[str] | None = None,
        val_shards: str | list[str] | None = None,
        train_weights: list[float] | None = None,
        batch_size: int = 64,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        mode: Literal["resampled", "exact"] = "resampled",
        samples_per_epoch: int | None = None,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        image_size: int = 224,
        crop_scale: tuple[float, float] = (0.9, 1.0),
        context_length: int = 77,
        zeroshot_classes: str | None = None,
        persistent_workers: bool = True,
        pin_memory: bool | None = None,
        selection: BatchSelection | None = None,
        tokenizer: str | None = None,
        preprocess: str | None = None,
        read_options: ShardReadOptions | None = None,
    ) -> None:
        """`train_weights`: mixture weight per `::`-separated train source (resampled mode).
        `samples_per_epoch`: epoch length in resampled mode (None = endless, train by
        max_steps), a cap in exact mode. `zeroshot_classes`: classes.json path, default the one
        beside the val shards. `pin_memory`: None = only when CUDA is available.
        `selection`: online batch selection (iid / CABS-DM / CABS-FM) from super-batches of the
        train stream; batch_size is then the kept size b.
        `tokenizer`: tokenize with this open_clip model's tokenizer (e.g. 'ViT-B-16-SigLIP',
        or local-dir:DIR / hf-hub:REPO; HF tokenizer files from the local cache only), at
        `context_length`. `preprocess`: the model's (or 'MODEL:TAG' pretrained tag's) mean/std,
        interpolation and resize mode, at `image_size` (see `data/model_preprocess.py`).
        `read_options`: retries, timeouts, read-ahead and local cache for shards given as URLs or
        `pipe:` commands (see docs/remote_shards.md)."""
        super().__init__()
        if mode not in ("resampled", "exact"):
            raise ValueError(f"mode must be 'resampled' or 'exact', got {mode!r}")
        if batch_size < 1 or (val_batch_size is not None and val_batch_size < 1) or num_workers < 0:
            raise ValueError(f"batch sizes must be >= 1 and num_workers >= 0, got batch_size={batch_size}, "
                             f"val_batch_size={val_batch_size}, num_workers={num_workers}")
        if train_weights is not None and mode == "exact":
            raise ValueError("train_weights (mixture weights) only apply to mode='resampled'")
        self.train_shards, self.val_shards, self.train_weights = train_shards, val_shards, train_weights
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.num_workers, self.mode, self.samples_per_epoch = num_workers, mode, samples_per_epoch
        self.shuffle_buffer, self.seed = shuffle_buffer, seed
        self.zeroshot_classes = zeroshot_classes
        self.persistent_workers = persistent_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.selection = selection
        self.read_options = read_options
        if selection is not None:
            if mode != "resampled":
                raise ValueError("selection (online batch selection) needs mode='resampled'")
            selection.resolve_super_batch_size(batch_size)
        self.selection_stats: dict[str, float] = {}
        self.tokenizer = Tokenizer(context_length) if tokenizer is None else tokenizer_for(tokenizer, context_length)
        pixels = image_transform_kwargs(preprocess)
        self.train_decoder = ImageTextDecoder(ImageTransform(image_size, True, tuple(crop_scale), **pixels),
                                              self.tokenizer)
        self.val_decoder = ImageTextDecoder(ImageTransform(image_size, train=False, **pixels), self.tokenizer)
        self._train_spec: ShardSpec | None = None
        self._val_spec: ShardSpec | None = None
        self._train_stream: ShardStream | None = None
        self._val_stream: ShardStream | None = None
        self._pending_state: dict[str, Any] | None = None
        self._val_skips: dict[int, dict[str, int]] = {}

    # ---- setup and loaders --------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Parse shard specs early, so a wrong path fails before any worker starts."""
        if stage in (None, "fit") and self._train_spec is None:
            if self.train_shards is None:
                raise ValueError("WebDataModule: train_shards is required for fitting")
            self._train_spec = parse_shard_spec(self.train_shards, self.train_weights)
        if stage in (None, "fit", "validate", "test") and self._val_spec is None and self.val_shards is not None:
            self._val_spec = parse_shard_spec(self.val_shards)

    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is not None:
            return self.trainer.global_rank, self.trainer.world_size
        return resolve_rank_world()

    def _loader(self, stream: ShardStream, num_workers: int) -> DataLoader:
        return DataLoader(stream, batch_size=None, num_workers=num_workers, pin_memory=self.pin_memory,
                          persistent_workers=self.persistent_workers and num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        if self._train_stream is None:
            self.setup("fit")
            rank, world_size = self._rank_world()
            self._train_stream = ShardStream(
                self._train_spec, self.train_decoder, self.batch_size, mode=self.mode, seed=self.seed,
                shuffle_buffer=self.shuffle_buffer, samples_per_epoch=self.samples_per_epoch,
                collate=self.train_decoder.collate, drop_last=True, rank=rank, world_size=world_size,
                num_workers=self.num_workers, selector=self._selector(world_size), read_options=self.read_options)
            if self._pending_state is not None:
                self._apply_state(self._pending_state)
        if self.trainer is not None:
            self._train_stream.set_epoch(self.trainer.current_epoch)
        loader = self._loader(self._train_stream, self.num_workers)
        # Lightning's per-epoch `_set_sampler_epoch` only looks at the sampler
        loader.sampler.set_epoch = self._train_stream.set_epoch
        return loader

    def _selector(self, world_size: int) -> SuperBatchSelector | None:
        if self.selection is None:
            return None
        exchange = None
        if self.selection.strategy == "cabs_dm" and world_size > 1:
            if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
                raise RuntimeError("selection: multi-rank cabs_dm exchanges concept frequencies through the "
                                   "process group's store; MASTER_ADDR/MASTER_PORT are not set")
            # one nonce per stream, identical on all ranks, so store keys of an earlier stream
            # in the same process group are never read
            nonce = [secrets.token_hex(8)]
            if dist.is_available() and dist.is_initialized():
                dist.broadcast_object_list(nonce, src=0)
            exchange = StoreExchange(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                                     f"mmpretrain/cabs/{nonce[0]}/", self.selection.exchange_timeout_s)
        return SuperBatchSelector(self.selection, self.batch_size, exchange)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_shards is None:
            return []
        if self._val_stream is None:
            self.setup("validate")
            rank, world_size = self._rank_world()
            # exact mode needs a shard per worker; a small val set simply gets fewer workers
            num_workers = min(self.num_workers, len(self._val_spec.shards) // world_size)
            self._val_stream = ShardStream(
                self._val_spec, self.val_decoder, self.val_batch_size, mode="exact", seed=self.seed,
                shuffle_buffer=0, collate=self.val_decoder.collate, drop_last=False, rank=rank,
                world_size=world_size, num_workers=num_workers, read_options=self.read_options)
        return self._loader(self._val_stream, self._val_stream.num_workers)

    def test_dataloader(self) -> DataLoader | list:
        """`mmpretrain test` evaluates the held-out (val) shards."""
        return self.val_dataloader()

    def set_epoch(self, epoch: int) -> None:
        if self._train_stream is not None:
            self._train_stream.set_epoch(epoch)

    # ---- data state ----------------------------------------------------------------------------
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, dict) and "_data_state" in batch:
            data_state = batch.pop("_data_state")
            if "_selection_stats" in batch:
                self.selection_stats = batch.pop("_selection_stats")
            training = self.trainer is None or self.trainer.training
            if training and self._train_stream is not None:
                self._train_stream.observe(data_state)
            else:
                self._val_skips[data_state["worker"]] = data_state["skips"]
        return batch

    @property
    def skip_counts(self) -> dict[str, int]:
        """Train-stream skips by reason, over the latest cumulative counts of all workers."""
        return self._train_stream.skip_counts if self._train_stream is not None else {}

    @property
    def val_skip_counts(self) -> dict[str, int]:
        total = SkipCounter()
        for counts in self._val_skips.values():
            total.merge(counts)
        return total.to_dict()

    def state_dict(self) -> dict[str, Any]:
        if self._train_stream is None:
            return dict(self._pending_state or {})
        local = self._train_stream.state_dict()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            per_rank: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(per_rank, local)
        else:
            per_rank = [local]
        return {"train_stream_per_rank": per_rank}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "train_stream_per_rank" not in state_dict:
            return
        self._pending_state = dict(state_dict)
        if self._train_stream is not None:
            self._apply_state(self._pending_state)

    def _apply_state(self, state: dict[str, Any]) -> None:
        per_rank = state["train_stream_per_rank"]
        rank = self._train_stream.rank
        # a rank missing from the saved world gets another rank's state; its fingerprint check
        # then refuses (exact mode) or restarts that epoch (resampled) instead of resuming at a
        # wrong position
        self._train_stream.load_state_dict(per_rank[rank] if rank < len(per_rank) else per_rank[0])

    # ---- zero-shot ----------------------------------------------------------------------------
    def zeroshot_prompts(self) -> tuple[list[str], torch.Tensor] | None:
        """(classnames, tokens [C, T, L]) for every classname x template of classes.json, or
        None when no classes file is configured and none lies beside the val shards."""
        path = self.zeroshot_classes or self._default_classes_path()
        remote = is_remote(path)
        try:
            data = fetch_optional(path, remote)
            if data is None and self.zeroshot_classes is None:
                return None
            if data is None:
                raise FileNotFoundError("no such file")
            classes = json.loads(data)
        except (OSError, ValueError) as exn:
            raise ValueError(f"cannot read zero-shot classes file {redact(path)!r}: {exn}") from exn
        classnames, templates = classes.get("classnames"), classes.get("templates")
        if (not isinstance(classnames, list) or not classnames or not isinstance(templates, list)
                or not templates or not all(isinstance(t, str) and "{}" in t for t in templates)):
            raise ValueError(f"{path}: expected {{\"classnames\": [str, ...], \"templates\": "
                             "[\"a photo of a {}.\", ...]}} with non-empty lists and '{}' in each template")
        prompts = [template.format(name) for name in classnames for template in templates]
        tokens = self.tokenizer(prompts)
        return list(classnames), tokens.view(len(classnames), len(templates), -1)

    def _default_classes_path(self) -> str:
        if self.val_shards is None:
            raise ValueError("zeroshot_prompts needs zeroshot_classes or val_shards (classes.json beside them)")
        self.setup("validate")
        first = self._val_spec.shards[0].path
        if is_remote(first) and is_remote(parent_of(first)):
            return f"{parent_of(first)}/{CLASSES_FILENAME}"
        return os.path.join(os.path.dirname(os.path.abspath(first)), CLASSES_FILENAME)
