"""`ContinualDataModule`: a whole task stream in one `fit`, batches mixing P, D and B.

`train_shards` is the pretraining pool P (replayed with lambda_pretrain), `val_shards` the
main held-out set (zero-shot retention; Lightning validation and `mmpretrain validate` use
it as for any `WebDataModule`), and `stream` the tasks (see `continual/stream.py`). Step s
trains on task `s // steps_per_task`; its batch holds P and D rows from the loader
(`continual/mixing.py`) and, from the second task on, lambda_buffer of the batch replayed
from a reservoir buffer of earlier tasks' D rows. The buffer lives here, in the main process,
so it works with any number of workers and is saved with the data state in every checkpoint
(`WebDataModule` saves `ContinualTrainState` per rank as its train-stream state).

Batches hold `image` [B, 3, H, W], `text` [B, L], `label` [B] (-1 for P and B rows: their
labels index other class lists), `source` [B] (0 = P, 1 = D, 2 = B) and `task` [B] (the task
each row was drawn for; the pool's rows carry -1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

from mmpretrain.continual.mixing import BatchMix, TaskMixtureStream, single_sample
from mmpretrain.continual.replay import REPLAYED_KEYS, ReservoirBuffer
from mmpretrain.continual.stream import StreamTask, TaskStream
from mmpretrain.data.datamodule import WebDataModule
from mmpretrain.data.wds.dataset import ShardStream
from mmpretrain.data.wds.shard_spec import parse_shard_spec
from mmpretrain.data.wds.skips import SkipCounter

SOURCE_PRETRAIN, SOURCE_TASK, SOURCE_BUFFER = 0, 1, 2


@dataclass
class EvalSet:
    """A decoded zero-shot eval set (this rank's share): `role` "task" (A_KA) or "heldout" (A_ZS)."""

    name: str
    role: str
    task: int | None
    images_N3HW: torch.Tensor
    labels_N: torch.Tensor
    prompts_CTL: torch.Tensor


class ContinualTrainState:
    """The train-stream state WebDataModule saves per rank: the mixture's delivered position
    and the replay buffer."""

    def __init__(self, mixture: TaskMixtureStream, buffer: ReservoirBuffer, rank: int) -> None:
        self.mixture, self.buffer, self.rank = mixture, buffer, rank

    def state_dict(self) -> dict[str, Any]:
        return {"mixture": self.mixture.state_dict(), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mixture.load_state_dict(state["mixture"])
        self.buffer.load_state_dict(state["buffer"])

    def set_epoch(self, epoch: int) -> None:
        """A stream is one endless epoch; nothing to do."""

    @property
    def skip_counts(self) -> dict[str, int]:
        total = SkipCounter()
        for stream in [self.mixture.pool, *self.mixture.tasks]:
            if stream is not None:
                total.merge(stream.skip_counts)
        return total.to_dict()


class ContinualDataModule(WebDataModule):
    def __init__(
        self,
        *args: Any,
        stream: TaskStream,
        lambda_pretrain: float = 0.33,
        lambda_task: float = 0.34,
        lambda_buffer: float = 0.33,
        buffer_size: int = 512,
        max_eval_samples: int | None = None,
        **kwargs: Any,
    ) -> None:
        """All `WebDataModule` arguments (train_shards = pretraining pool, val_shards = held-out
        set, batch_size = whole mixed batch; mode must stay resampled), plus the `stream`, the
        mixing ratios, the replay `buffer_size` (samples) and `max_eval_samples` per eval set."""
        super().__init__(*args, **kwargs)
        if self.mode != "resampled" or self.selection is not None:
            raise ValueError("ContinualDataModule streams step-based: data.init_args.mode must be 'resampled' "
                             "and selection unset")
        if lambda_buffer > 0 and buffer_size < 1:
            raise ValueError("lambda_buffer > 0 needs data.init_args.buffer_size >= 1")
        self.stream = stream
        self.tasks: list[StreamTask] = stream.ordered_tasks()
        self.mix = BatchMix(self.batch_size, lambda_pretrain, lambda_task, lambda_buffer)
        self.buffer = ReservoirBuffer(buffer_size if lambda_buffer > 0 else 0, seed=self.seed)
        self.max_eval_samples = max_eval_samples
        self._mixture: TaskMixtureStream | None = None
        self._eval_sets: list[EvalSet] | None = None

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self._train_spec is None and self.mix.lambda_pretrain == 0:
            return super().setup("validate")
        return super().setup(stage)

    # ---- training ---------------------------------------------------------------------------
    def _single_sample_stream(self, spec: str | Any, seed: int) -> ShardStream:
        rank, world_size = self._rank_world()
        return ShardStream(spec, self.train_decoder, 1, mode="resampled", seed=seed,
                           shuffle_buffer=self.shuffle_buffer, collate=single_sample, rank=rank,
                           world_size=world_size, num_workers=self.num_workers, read_options=self.read_options)

    def train_dataloader(self) -> DataLoader:
        if self._mixture is None:
            self.setup("fit")
            pool = (self._single_sample_stream(self._train_spec, self.seed)
                    if self.mix.lambda_pretrain > 0 else None)
            tasks = [self._single_sample_stream(parse_shard_spec(task.train), self.seed + 1 + index)
                     for index, task in enumerate(self.tasks)]
            self._mixture = TaskMixtureStream(pool, tasks, self.mix, self.stream.steps_per_task,
                                              self.train_decoder.collate, self.num_workers)
            # WebDataModule checkpoints its `_train_stream` per rank (state_dict / load_state_dict)
            self._train_stream = ContinualTrainState(self._mixture, self.buffer, self._rank_world()[0])
            if self._pending_state is not None:
                self._apply_state(self._pending_state)
        return self._loader(self._mixture, self.num_workers)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not (isinstance(batch, dict) and "_continual_state" in batch):
            return super().on_before_batch_transfer(batch, dataloader_idx)
        state = batch.pop("_continual_state")
        self._mixture.observe(state)
        task, num_pretrain = state["task"], state["num_pretrain"]
        rows = batch["image"].shape[0]
        source = torch.full((rows,), SOURCE_TASK, dtype=torch.int64)
        source[:num_pretrain] = SOURCE_PRETRAIN
        mixed = {"image": batch["image"], "text": batch["text"], "source": source,
                 "label": torch.where(source == SOURCE_TASK, batch["label"], -1),
                 "task": torch.where(source == SOURCE_TASK, task, -1)}
        if state["num_buffer"]:
            replayed = self.buffer.sample(state["num_buffer"], before_task=task, draw=state["step"])
            num = state["num_buffer"]
            extra = {**{key: replayed[key] for key in REPLAYED_KEYS},
                     "source": torch.full((num,), SOURCE_BUFFER, dtype=torch.int64),
                     "label": torch.full((num,), -1, dtype=torch.int64),
                     "task": replayed["task"]}
            mixed = {key: torch.cat([value, extra[key]]) for key, value in mixed.items()}
        if self.buffer.capacity:
            self.buffer.add({key: batch[key][num_pretrain:] for key in REPLAYED_KEYS}, task)
        return mixed

    # ---- evaluation sets ----------------------------------------------------------------------
    def eval_sets(self) -> list[EvalSet]:
        """Every task's eval set (in training order) and every held-out set, decoded once."""
        if self._eval_sets is None:
            sets = [(task.name, "task", index, task.eval) for index, task in enumerate(self.tasks)
                    if task.eval is not None]
            heldout = ([self.val_shards] if self.val_shards is not None else []) + self.stream.heldout_specs()
            sets += [(f"heldout{i}" if i else "heldout", "heldout", None, spec) for i, spec in enumerate(heldout)]
            self._eval_sets = [self._decode_eval_set(*entry) for entry in sets]
        return self._eval_sets

    def _decode_eval_set(self, name: str, role: str, task: int | None, spec: str) -> EvalSet:
        reader = WebDataModule(val_shards=spec, batch_size=self.val_batch_size, num_workers=0,
                               context_length=self.tokenizer.context_length)
        prompts = reader.zeroshot_prompts()
        if prompts is None:
            raise ValueError(f"eval set {name!r} ({spec}): no classes.json beside its shards")
        rank, world_size = self._rank_world()
        stream = ShardStream(parse_shard_spec(spec), self.val_decoder, self.val_batch_size, mode="exact",
                             seed=self.seed, shuffle_buffer=0, collate=self.val_decoder.collate,
                             drop_last=False, rank=rank, world_size=world_size, num_workers=0,
                             read_options=self.read_options)
        images, labels = [], []
        limit = None if self.max_eval_samples is None else -(-self.max_eval_samples // world_size)
        for batch in stream:
            images.append(batch["image"])
            labels.append(batch["label"])
            if limit is not None and sum(len(x) for x in labels) >= limit:
                break
        images_N3HW, labels_N = torch.cat(images)[:limit], torch.cat(labels)[:limit]
        return EvalSet(name, role, task, images_N3HW, labels_N, prompts[1])
