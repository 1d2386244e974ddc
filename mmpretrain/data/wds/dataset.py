"""`ShardStream`: the stateful, resumable iterable dataset over WebDataset shards.

Per DataLoader worker the pipeline is: shard plan (`epoch_plan`) -> raw samples
(`tar_reader`) -> shuffle buffer -> decode -> batch. Decoding runs after the buffer and only
for samples about to be batched, so a selection stage can reject raw samples before paying
for a decode. Batching happens here; use `DataLoader(stream, batch_size=None)`.

Resume: every batch carries `_data_state` (worker, epoch, batches yielded, raw samples taken
out of the buffer, cumulative skip counts, read position). The consumer feeds those to
`observe`; `state_dict` then describes what was *delivered* (not what workers prefetched).
After `load_state_dict`, each worker replays its deterministic raw stream of that epoch up to
the saved position without decoding, so resumed training neither repeats nor skips samples;
the worker due next is served first, so batches also come in the uninterrupted order, and
random augmentations are seeded by each sample's stream position (identical crops after resume).

Exact mode with `drop_last`: if skips leave a worker short of its planned batches, it fills
them by a second pass over its own shards (counted as `refill`), so ranks stay in step; the
faults that pass meets again are not counted twice.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import os
import random
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.distributed as dist
from torch.utils.data import IterableDataset, default_collate, get_worker_info

from mmpretrain.data.wds.epoch_plan import (ShardDraws, exact_quotas, exact_worker_shards,
                                            resampled_quotas, seeded_rng, shuffle_buffer)
from mmpretrain.data.wds.remote.options import DEFAULT_READ_OPTIONS, ShardReadOptions
from mmpretrain.data.wds.remote.read_ahead import ShardOpener
from mmpretrain.data.wds.shard_spec import Shard, ShardSpec, parse_shard_spec
from mmpretrain.data.wds.skips import SkipCounter, SkipSample
from mmpretrain.data.wds.tar_reader import iter_tar_samples

if TYPE_CHECKING:
    from mmpretrain.data.sampling.selection import SuperBatchSelector

Mode = Literal["resampled", "exact"]
RawSample = dict[str, Any]

# resampled mode gives up when this many shard draws in a row yield no raw sample at all
_MIN_EMPTY_DRAWS = 64


def resolve_rank_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """Explicit values, else torch.distributed when initialised, else env RANK/WORLD_SIZE, else 0/1."""
    if dist.is_available() and dist.is_initialized():
        default_rank, default_world = dist.get_rank(), dist.get_world_size()
    else:
        default_rank, default_world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    rank = default_rank if rank is None else rank
    world_size = default_world if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world_size {world_size}")
    return rank, world_size


def shard_list_hash(spec: ShardSpec) -> str:
    """SHA-256 over (source, basename, size) of every shard in order; independent of where the
    shard directory is mounted, so a moved data set still resumes."""
    digest = hashlib.sha256()
    for shard in spec.shards:
        digest.update(f"{shard.source}\0{os.path.basename(shard.path)}\0{shard.size}\n".encode())
    return digest.hexdigest()


@contextlib.contextmanager
def _augmentation_rng(*stream_position: object) -> Iterator[None]:
    """Seed torch's CPU generator and Python's `random` from the sample's position in the
    deterministic raw stream, so random augmentations of a sample do not depend on what the
    process did before (a resumed run crops exactly like the uninterrupted one); the caller's
    generator states are restored."""
    seed = int.from_bytes(hashlib.sha256(repr(stream_position).encode()).digest()[:8], "little")
    # transforms draw crop boxes from Python's `random` and other augmentations from torch's
    python_state = random.getstate()
    random.seed(seed)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        random.setstate(python_state)


@dataclass
class _ReadPosition:
    shard_cursor: int = 0
    offset: int = 0


class ShardStream(IterableDataset):
    def __init__(
        self,
        sources: str | Sequence[str] | ShardSpec,
        decode: Callable[[RawSample], dict],
        batch_size: int,
        mode: Mode = "resampled",
        seed: int = 0,
        shuffle_buffer: int = 1000,
        samples_per_epoch: int | None = None,
        collate: Callable[[list[dict]], dict] | None = None,
        drop_last: bool = True,
        weights: Sequence[float] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        num_workers: int | None = None,
        selector: SuperBatchSelector | None = None,
        read_options: ShardReadOptions | None = None,
    ) -> None:
        """`samples_per_epoch` sets the epoch length in resampled mode and caps it in exact mode.
        `num_workers` (the DataLoader's) is needed for `len()`; it is checked inside workers.
        `selector`: each batch is chosen from a super-batch of raw samples (resampled mode only;
        see `mmpretrain.data.sampling`); samples_per_epoch then counts trained samples.
        `read_options`: retries, timeouts, read-ahead and cache of remote shards."""
        if mode not in ("resampled", "exact"):
            raise ValueError(f"mode must be 'resampled' or 'exact', got {mode!r}")
        if batch_size < 1 or shuffle_buffer < 0:
            raise ValueError(f"batch_size must be >= 1 and shuffle_buffer >= 0, got {batch_size}, {shuffle_buffer}")
        spec = sources if isinstance(sources, ShardSpec) else parse_shard_spec(sources, weights)
        if mode == "exact":
            if spec.weights is not None:
                raise ValueError(f"shard spec {spec.description!r}: mixture weights only apply to "
                                 "resampled mode; exact mode reads every shard once per epoch")
            spec = spec.with_counted_sizes()
        elif not any(spec.draw_weights()):
            raise ValueError(f"shard spec {spec.description!r}: every source with a positive weight is empty")
        self.spec = spec
        self._shards_sha256 = shard_list_hash(spec)
        self.decode = decode
        self.collate = collate or default_collate
        self.batch_size, self.mode, self.seed = batch_size, mode, seed
        self.shuffle_buffer, self.samples_per_epoch, self.drop_last = shuffle_buffer, samples_per_epoch, drop_last
        self.rank, self.world_size = resolve_rank_world(rank, world_size)
        self.num_workers = num_workers
        self.selector = selector
        self.read_options = read_options or DEFAULT_READ_OPTIONS
        if selector is not None and (mode != "resampled" or selector.batch_size != batch_size):
            raise ValueError(f"batch selection needs mode='resampled' (got {mode!r}) and the selector's "
                             f"kept size {selector.batch_size} equal to batch_size {batch_size}")
        # shared memory, so set_epoch reaches persistent DataLoader workers
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._resume: dict[str, Any] | None = None
        self._delivered: dict[int, dict[str, Any]] = {}
        self._last_worker: int | None = None
        if num_workers is not None:
            self._check_plan(max(num_workers, 1))

    # ---- epochs and plan -------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._delivered, self._last_worker = {}, None
            if self._resume is not None and self._resume["epoch"] != epoch:
                self._resume = None
        self._epoch.fill_(epoch)

    def _quotas(self, epoch: int, num_workers: int) -> list[int] | None:
        per_rank_cap = (None if self.samples_per_epoch is None
                        else self.samples_per_epoch // (self.world_size * self.batch_size))
        if self.mode == "resampled":
            return resampled_quotas(self.samples_per_epoch, self.world_size, num_workers, self.batch_size)
        return exact_quotas(self.spec.shards, self.seed, epoch, self.rank, self.world_size, num_workers,
                            self.batch_size, self.drop_last, per_rank_cap)

    def _check_plan(self, num_workers: int) -> None:
        where = f"shard spec {self.spec.description!r}"
        if self.mode == "exact" and len(self.spec.shards) < self.world_size * num_workers:
            raise ValueError(f"{where}: exact mode needs at least world_size * num_workers = "
                             f"{self.world_size} * {num_workers} shards, found {len(self.spec.shards)}; "
                             "use fewer DataLoader workers or write more, smaller shards")
        quotas = self._quotas(self.epoch, num_workers)
        if quotas is not None and sum(quotas) == 0:
            available = (f"samples_per_epoch={self.samples_per_epoch}" if self.mode == "resampled"
                         else f"{self.spec.total_size} samples")
            raise ValueError(f"{where}: {available} is not enough for one batch of {self.batch_size} "
                             f"on each of {self.world_size} ranks ({num_workers} workers each)")

    def __len__(self) -> int:
        if self.num_workers is None:
            raise TypeError("ShardStream length needs num_workers (the DataLoader's) at construction")
        quotas = self._quotas(self.epoch, max(self.num_workers, 1))
        if quotas is None:
            raise TypeError("an endless resampled ShardStream has no length; set samples_per_epoch")
        return sum(quotas)

    # ---- delivered progress and resume ---------------------------------------------------------
    def _fingerprint(self) -> dict[str, Any]:
        return {"mode": self.mode, "seed": self.seed, "batch_size": self.batch_size,
                "shuffle_buffer": self.shuffle_buffer, "num_shards": len(self.spec.shards),
                "shards_sha256": self._shards_sha256,
                "rank": self.rank, "world_size": self.world_size, "num_workers": self.num_workers,
                **({"selection": repr(self.selector.config)} if self.selector is not None else {})}

    def observe(self, data_state: dict[str, Any]) -> None:
        """Record the `_data_state` of a batch that reached the consumer (of the current epoch)."""
        if data_state["epoch"] != self.epoch:
            return
        self._last_worker = data_state["worker"]
        self._delivered[data_state["worker"]] = {
            "batches": data_state["batches"], "consumed": data_state["consumed"],
            "skips": dict(data_state["skips"])}

    @property
    def skip_counts(self) -> dict[str, int]:
        """Skips by reason, summed over the latest cumulative counts of each worker."""
        total = SkipCounter()
        for worker_state in self._delivered.values():
            total.merge(worker_state["skips"])
        return total.to_dict()

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "config": self._fingerprint(),
                "workers": {w: dict(s) for w, s in self._delivered.items()}, "last_worker": self._last_worker}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Exact mode refuses a state saved under another data layout (its sample order would
        differ, so resuming could neither promise no repeats nor no skips); resampled mode
        restarts the saved epoch instead, with a warning."""
        saved, current = state["config"], self._fingerprint()
        changed = {k: (saved.get(k), v) for k, v in current.items() if saved.get(k) != v}
        if changed and self.mode == "exact":
            described = ", ".join(f"{k}: saved {old!r}, now {new!r}" for k, (old, new) in changed.items())
            raise ValueError(
                f"cannot resume exact-mode data of {self.spec.description!r} from this checkpoint: "
                f"{described}. Exact mode's sample order depends on world size (devices x num_nodes), "
                "data.init_args.num_workers, seed, batch_size, shuffle_buffer and the shard list; "
                "resume with the saved values, or set data.init_args.mode=resampled to continue "
                "with a restarted sample order")
        self.set_epoch(int(state["epoch"]))
        if changed:
            warnings.warn(f"data state was saved with {saved}, now {current}; "
                          f"restarting epoch {state['epoch']} from its beginning (samples may repeat)")
            return
        self._delivered = {int(w): dict(s) for w, s in state["workers"].items()}
        self._last_worker = state.get("last_worker")
        # the DataLoader serves workers round-robin from worker 0, so the resumed loader's first
        # worker must play the role of the worker that was due next
        next_worker = 0 if self._last_worker is None else self._last_worker + 1
        self._resume = {"epoch": int(state["epoch"]), "workers": dict(self._delivered), "next_worker": next_worker}

    # ---- iteration ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if info is not None:
            # everything the worker inherited (torch, the model-free data stack) is long-lived;
            # frozen, it is no longer walked by the full collections that the stream's
            # churn of parsed sidecars triggers (those cost ~80 ms per CABS super-batch)
            gc.freeze()
        resuming = self._resume is not None and self._resume["epoch"] == self.epoch
        if resuming:
            worker = (worker + self._resume.get("next_worker", 0)) % num_workers
        if self.num_workers is None:
            self._check_plan(num_workers)
        elif max(self.num_workers, 1) != num_workers:
            raise RuntimeError(f"ShardStream was planned for {self.num_workers} workers but runs in "
                               f"{num_workers}; pass the DataLoader's num_workers")
        epoch = self.epoch
        quotas = self._quotas(epoch, num_workers)
        quota = None if quotas is None else quotas[worker]
        skips, position = SkipCounter(), _ReadPosition()
        stream = self._raw_stream(epoch, worker, num_workers, position, skips)
        consumed = batches = 0
        resume = self._resume["workers"].get(worker) if resuming else None
        if resume is not None:
            for _ in range(resume["consumed"]):
                if next(stream, None) is None:
                    raise RuntimeError(f"saved data state of worker {worker} (epoch {epoch}) is past the "
                                       f"end of {self.spec.description!r}; the shards changed since")
            consumed, batches = resume["consumed"], resume["batches"]
            skips.reset(resume["skips"])
        if quota is not None and batches >= quota:
            return
        if self.selector is not None:
            yield from self._iter_selected(stream, worker, num_workers, epoch, quota, batches, consumed,
                                           position, skips)
            return
        decoded_any, warned = batches > 0, False
        pending: list[dict] = []
        for pass_index, raw in stream:
            consumed += 1
            if pass_index > 0 and not decoded_any:
                raise RuntimeError(f"rank {self.rank} worker {worker}: no sample of {self.spec.description!r} "
                                   f"could be decoded (skips: {skips.to_dict()}); check the decode settings")
            # an exact-mode refill pass meets the faults of the first pass again; count each once
            refilling = pass_index > 0 and self.mode == "exact"
            try:
                with _augmentation_rng(self.seed, epoch, self.rank, worker, consumed):
                    pending.append(self.decode(raw))
            except SkipSample as skip:
                if not refilling:
                    skips.add(skip.reason)
                continue
            except Exception as exn:  # noqa: BLE001 - one bad sample must never stop training
                if not refilling:
                    skips.add("decode_error")
                if not warned:
                    warned = True
                    warnings.warn(f"decode failed on {raw.get('__key__')!r} in {raw.get('__url__')!r}: "
                                  f"{exn!r}; counted as decode_error (later failures are only counted)")
                continue
            decoded_any = True
            if refilling:
                skips.add("refill")
            if len(pending) == self.batch_size:
                batches += 1
                yield self._emit(pending, worker, num_workers, epoch, batches, consumed, position, skips)
                pending = []
                if quota is not None and batches >= quota:
                    return
        if pending and not self.drop_last:
            yield self._emit(pending, worker, num_workers, epoch, batches + 1, consumed, position, skips)

    def _iter_selected(self, stream: Iterator[tuple[int, RawSample]], worker: int, num_workers: int,
                       epoch: int, quota: int | None, batches: int, consumed: int, position: _ReadPosition,
                       skips: SkipCounter) -> Iterator[dict]:
        """One super-batch per batch: the selector orders B raw samples (reading only their json),
        and they are decoded in that order until the batch is full, so rejected samples are
        never decoded unless a selected one fails."""
        from mmpretrain.data.sampling.selection import SuperBatchId

        size, warned = self.selector.super_batch_size, False
        while quota is None or batches < quota:
            raws = [raw for _, raw in itertools.islice(stream, size)]
            consumed += len(raws)
            result = self.selector(raws, SuperBatchId(epoch, self.rank, self.world_size, worker, batches))
            samples, emitted = [], []
            for index in result.decode_order():
                try:
                    # seeded by the sample's raw-stream position, exactly as the plain path
                    with _augmentation_rng(self.seed, epoch, self.rank, worker, consumed - len(raws) + index + 1):
                        samples.append(self.decode(raws[index]))
                except SkipSample as skip:
                    skips.add(skip.reason)
                    continue
                except Exception as exn:  # noqa: BLE001 - one bad sample must never stop training
                    skips.add("decode_error")
                    if not warned:
                        warned = True
                        warnings.warn(f"decode failed on {raws[index].get('__key__')!r}: {exn!r}; counted "
                                      "as decode_error (later failures are only counted)")
                    continue
                emitted.append(index)
                if len(samples) == self.batch_size:
                    break
            if len(samples) < self.batch_size:
                raise RuntimeError(f"rank {self.rank} worker {worker}: only {len(samples)} of a super-batch "
                                   f"of {len(raws)} samples of {self.spec.description!r} could be decoded, "
                                   f"need {self.batch_size} (skips: {skips.to_dict()})")
            batches += 1
            batch = self._emit(samples, worker, num_workers, epoch, batches, consumed, position, skips)
            batch["_selection_stats"] = result.statistics(emitted)
            yield batch

    def _emit(self, samples: list[dict], worker: int, num_workers: int, epoch: int, batches: int,
              consumed: int, position: _ReadPosition, skips: SkipCounter) -> dict:
        batch = self.collate(samples)
        if not isinstance(batch, dict):
            raise TypeError(f"collate must return a dict, got {type(batch).__name__}")
        batch["_data_state"] = {
            "worker": worker, "num_workers": num_workers, "rank": self.rank, "epoch": epoch,
            "batches": batches, "consumed": consumed, "shard_cursor": position.shard_cursor,
            "offset": position.offset, "skips": skips.to_dict()}
        return batch

    def _raw_stream(self, epoch: int, worker: int, num_workers: int, position: _ReadPosition,
                    skips: SkipCounter) -> Iterator[tuple[int, RawSample]]:
        """(pass index, raw sample) after the shuffle buffer, deterministic per (epoch, rank, worker)."""
        if self.mode == "exact":
            shards = exact_worker_shards(self.spec.shards, self.seed, epoch, self.rank, self.world_size,
                                         worker, num_workers)
            return self._exact_passes(shards, epoch, worker, position, skips)
        draws = ShardDraws(self.spec.draw_weights(), seeded_rng(self.seed, epoch, self.rank, worker, "draws"))
        window = max(len(self.spec.shards), _MIN_EMPTY_DRAWS)
        raw = self._read_draws(draws, window, position, skips)
        return shuffle_buffer(raw, self.shuffle_buffer, seeded_rng(self.seed, epoch, self.rank, worker, "buffer"))

    def _exact_passes(self, shards: list[Shard], epoch: int, worker: int, position: _ReadPosition,
                      skips: SkipCounter) -> Iterator[tuple[int, RawSample]]:
        # each pass flushes its own buffer, so a refill pass never overtakes first-pass samples
        for pass_index in itertools.count():
            rng = seeded_rng(self.seed, epoch, self.rank, worker, pass_index, "buffer")
            cursors = range(pass_index * len(shards), (pass_index + 1) * len(shards))
            produced = 0
            pass_skips = skips if pass_index == 0 else SkipCounter()
            for sample in shuffle_buffer(self._read(zip(cursors, shards), position, pass_skips), self.shuffle_buffer, rng):
                produced += 1
                yield pass_index, sample
            if not self.drop_last:
                return
            if produced == 0:
                raise RuntimeError(f"rank {self.rank} worker {worker}: its shards of "
                                   f"{self.spec.description!r} hold no readable sample (skips: {skips.to_dict()})")

    def _read_draws(self, draws: ShardDraws, window: int, position: _ReadPosition,
                    skips: SkipCounter) -> Iterator[tuple[int, RawSample]]:
        empty_draws = 0
        opener = ShardOpener(self.read_options)
        try:
            for (draw, shard_index), (_, next_index) in _with_next(enumerate(draws)):
                produced = 0
                for sample in self._read([(draw, self.spec.shards[shard_index])], position, skips,
                                         opener, then=self.spec.shards[next_index]):
                    produced += 1
                    yield draw // window, sample
                empty_draws = 0 if produced else empty_draws + 1
                if empty_draws >= window:
                    raise RuntimeError(f"{window} shard draws in a row from {self.spec.description!r} "
                                       f"yielded no readable sample (skips: {skips.to_dict()})")
        finally:
            opener.close()

    def _read(self, cursor_shards, position: _ReadPosition, skips: SkipCounter, opener: ShardOpener | None = None,
              then: Shard | None = None) -> Iterator[RawSample]:
        """Samples of the shards in order; each remote shard's successor (`then` after the
        last) is opened ahead while the current one is read."""
        own = opener is None
        opener = opener or ShardOpener(self.read_options)
        try:
            for (cursor, shard), following in _with_next(cursor_shards):
                opener.hint(following[1].path if following is not None else then and then.path)
                position.shard_cursor, position.offset = cursor, 0
                for sample in iter_tar_samples(shard.path, skips, opener):
                    position.offset += 1
                    yield sample
        finally:
            if own:
                opener.close()


def _with_next(items) -> Iterator[tuple[Any, Any]]:
    """(item, the item after it or None), pulling one item ahead."""
    iterator = iter(items)
    current = next(iterator, _END)
    while current is not _END:
        following = next(iterator, _END)
        yield current, (None if following is _END else following)
        current = following


_END = object()
