"""Per-epoch plan of a shard stream: which shards each (rank, worker) reads, in what order,
and how many batches it yields. Pure functions of (spec, seed, epoch, rank, world, worker),
so every process computes the same plan without communicating.

Exact mode: one shard permutation per epoch, seeded by (seed, epoch) and identical on every
rank; rank r takes `perm[r::world]`, then worker w of that rank takes `[w::num_workers]`.
With `drop_last`, every rank yields the same number of batches T = min over ranks of
sum over workers of floor(samples(rank, worker) / batch_size), so no rank waits on another
in a collective at the end of the epoch; the samples beyond T batches on each rank (the
per-worker remainders < batch_size plus the excess of larger ranks) are the dropped tail.

Resampled mode: shards drawn with replacement by a generator seeded by
(seed, epoch, rank, worker); `samples_per_epoch // (world * batch_size)` batches per rank.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from mmpretrain.data.wds.shard_spec import Shard

T = TypeVar("T")


def seeded_rng(*parts: object) -> random.Random:
    """A generator whose stream depends only on `parts` (string seeds are hashed with SHA-512,
    so the stream is identical in every process, unlike `hash()`)."""
    return random.Random(":".join(str(p) for p in parts))


def shuffle_buffer(items: Iterable[T], size: int, rng: random.Random) -> Iterator[T]:
    """Reservoir-style shuffle holding `size` items; outputs all items exactly once."""
    if size <= 1:
        yield from items
        return
    buffer: list[T] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        slot = rng.randrange(size)
        yield buffer[slot]
        buffer[slot] = item
    rng.shuffle(buffer)
    yield from buffer


def _shard_order(num_shards: int, seed: int, epoch: int) -> list[int]:
    order = list(range(num_shards))
    seeded_rng(seed, epoch, "shard-order").shuffle(order)
    return order


def exact_worker_shards(shards: Sequence[Shard], seed: int, epoch: int, rank: int, world_size: int,
                        worker: int, num_workers: int) -> list[Shard]:
    order = _shard_order(len(shards), seed, epoch)
    return [shards[i] for i in order[rank::world_size][worker::num_workers]]


def exact_quotas(shards: Sequence[Shard], seed: int, epoch: int, rank: int, world_size: int,
                 num_workers: int, batch_size: int, drop_last: bool,
                 max_batches: int | None = None) -> list[int]:
    """Batches each worker of `rank` yields this epoch (shard sizes must be known)."""
    samples = [[0] * num_workers for _ in range(world_size)]
    for position, shard_index in enumerate(_shard_order(len(shards), seed, epoch)):
        samples[position % world_size][(position // world_size) % num_workers] += shards[shard_index].size
    if not drop_last:
        return [-(-n // batch_size) for n in samples[rank]]
    caps = [n // batch_size for n in samples[rank]]
    target = min(sum(n // batch_size for n in per_worker) for per_worker in samples)
    if max_batches is not None:
        target = min(target, max_batches)
    return _trim_to(caps, target)


def _trim_to(caps: list[int], target: int) -> list[int]:
    """Lower the largest quotas first until they sum to `target` (keeps workers balanced)."""
    quotas = list(caps)
    excess = sum(quotas) - target
    while excess > 0:
        largest = max(range(len(quotas)), key=lambda w: (quotas[w], w))
        above_next = quotas[largest] - max((q for w, q in enumerate(quotas) if w != largest), default=0)
        step = min(excess, max(above_next, 1))
        quotas[largest] -= step
        excess -= step
    return quotas


def resampled_quotas(samples_per_epoch: int | None, world_size: int, num_workers: int,
                     batch_size: int) -> list[int] | None:
    """Batches per worker of one rank; None for an endless stream."""
    if samples_per_epoch is None:
        return None
    per_rank = samples_per_epoch // (world_size * batch_size)
    return [per_rank // num_workers + (w < per_rank % num_workers) for w in range(num_workers)]


class ShardDraws:
    """Endless weighted draws of shard indices with replacement."""

    def __init__(self, weights: Sequence[float], rng: random.Random) -> None:
        total = 0.0
        self._cumulative: list[float] = []
        for w in weights:
            total += w
            self._cumulative.append(total)
        self._indices = range(len(weights))
        self._rng = rng

    def __iter__(self) -> Iterator[int]:
        while True:
            yield self._rng.choices(self._indices, cum_weights=self._cumulative)[0]
