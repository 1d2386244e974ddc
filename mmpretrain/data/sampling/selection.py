"""Online batch selection stage: a super-batch of B raw samples -> b kept, reading only json.

`BatchSelection` is the config (a `WebDataModule` argument); `SuperBatchSelector` is what a
`ShardStream` calls per super-batch. It returns a decode order: the b selected samples first,
then the rejected ones in a seeded random order, so a selected sample that fails to decode is
replaced by a rejected one and every super-batch still yields exactly b samples. That keeps
ranks in lockstep (one super-batch, one exchange, one batch per step) and keeps "samples
trained" at the configured number while the stream is read B/b times longer.

The canonical concept order that decides which concepts get the +1 of T mod |C| is the sorted
concept names of the global super-batch, so every rank computes the same targets.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mmpretrain.data.sampling.cabs import concept_targets, kept_size, select_dm, select_fm, select_iid
from mmpretrain.data.sampling.concepts import ConceptReader, encode_concepts, sample_frequencies
from mmpretrain.data.sampling.exchange import StoreExchange
from mmpretrain.data.sampling.stats import batch_concept_stats
from mmpretrain.data.wds.epoch_plan import seeded_rng

Strategy = Literal["iid", "cabs_dm", "cabs_fm"]


@dataclass
class BatchSelection:
    """strategy: `iid` (b random), `cabs_dm` (diversity), `cabs_fm` (most objects).
    super_batch_size: B; None = batch_size / (1 - filter_ratio). The kept size
    b = 2^round(log2((1-f) B)) must equal the data module's batch_size. cap: M, per concept
    per rank (DM). annotations: optional parquet (`key`, `classes`) overriding the json.
    exchange_timeout_s: how long a multi-rank DM worker waits for the other ranks' frequencies."""

    strategy: Strategy = "cabs_dm"
    filter_ratio: float = 0.8
    super_batch_size: int | None = None
    cap: int = 10
    seed: int = 0
    annotations: str | None = None
    exchange_timeout_s: float = 600.0

    def resolve_super_batch_size(self, batch_size: int) -> int:
        if self.strategy not in ("iid", "cabs_dm", "cabs_fm"):
            raise ValueError(f"selection.strategy must be iid, cabs_dm or cabs_fm, got {self.strategy!r}")
        if not 0.0 <= self.filter_ratio < 1.0 or self.cap < 1:
            raise ValueError(f"selection: need 0 <= filter_ratio < 1 and cap >= 1, "
                             f"got filter_ratio={self.filter_ratio}, cap={self.cap}")
        size = self.super_batch_size or round(batch_size / (1.0 - self.filter_ratio))
        kept = kept_size(size, self.filter_ratio)
        if kept > size:
            raise ValueError(f"selection: super_batch_size={size} with filter_ratio={self.filter_ratio} would keep "
                             f"b={kept} > B samples; use a larger super_batch_size or filter_ratio")
        if kept != batch_size:
            raise ValueError(f"selection: super_batch_size={size} with filter_ratio={self.filter_ratio} "
                             f"keeps b={kept} samples, but data batch_size={batch_size}; set batch_size "
                             f"to {kept} (b = 2^round(log2((1-f) B)))")
        return size


@dataclass(frozen=True)
class SuperBatchId:
    epoch: int
    rank: int
    world_size: int
    worker: int
    index: int

    @property
    def tag(self) -> str:
        return f"e{self.epoch}/w{self.worker}/s{self.index}"


@dataclass
class SelectionResult:
    kept: list[int]
    concepts: list[list[str]]
    rng: random.Random
    milliseconds: float
    exchange_milliseconds: float

    def decode_order(self) -> Iterator[int]:
        """The kept samples, then (only if a kept one fails to decode) the rejected ones in a
        seeded random order."""
        yield from self.kept
        chosen = set(self.kept)
        rest = [i for i in range(len(self.concepts)) if i not in chosen]
        self.rng.shuffle(rest)
        yield from rest

    def statistics(self, emitted: Sequence[int]) -> dict[str, float]:
        stats = batch_concept_stats([self.concepts[i] for i in emitted])
        stats["selection_ms"] = self.milliseconds
        stats["exchange_ms"] = self.exchange_milliseconds
        stats["super_batch_unique_concepts"] = float(len({c for k in self.concepts for c in k}))
        return stats


class SuperBatchSelector:
    def __init__(self, config: BatchSelection, batch_size: int,
                 exchange: StoreExchange | None = None) -> None:
        """`exchange` is required for cabs_dm with world_size > 1."""
        self.config, self.batch_size = config, batch_size
        self.super_batch_size = config.resolve_super_batch_size(batch_size)
        self.reader = ConceptReader(config.annotations)
        self.exchange = exchange

    def __call__(self, raws: Sequence[dict[str, Any]], where: SuperBatchId) -> SelectionResult:
        start = time.perf_counter()
        concepts = [self.reader(raw) for raw in raws]
        rng = seeded_rng(self.config.seed, where.epoch, where.rank, where.worker, where.index, "select")
        exchange_ms = 0.0
        if self.config.strategy == "iid":
            kept = select_iid(len(raws), self.batch_size, rng)
        elif self.config.strategy == "cabs_fm":
            kept = select_fm(concepts, self.batch_size)
        else:
            kept, exchange_ms = self._select_dm(concepts, where, rng)
        return SelectionResult(kept, concepts, rng, 1000.0 * (time.perf_counter() - start), exchange_ms)

    def _select_dm(self, concepts: list[list[str]], where: SuperBatchId, rng) -> tuple[list[int], float]:
        encoded, names = encode_concepts(concepts)
        local_freq = sample_frequencies(encoded, len(names))
        start = time.perf_counter()
        global_freq = self._global_frequencies(names, local_freq, where)
        exchange_ms = 1000.0 * (time.perf_counter() - start)
        canonical = sorted(global_freq)
        targets_by_name = dict(zip(canonical, concept_targets(
            len(canonical), self.batch_size * where.world_size, self.config.cap)))
        targets = [targets_by_name[n] for n in names]
        frequencies = [global_freq[n] for n in names]
        return select_dm(encoded, self.batch_size, targets, frequencies, self.config.cap, rng), exchange_ms

    def _global_frequencies(self, names: list[str], local_freq: list[int], where: SuperBatchId) -> dict[str, int]:
        if where.world_size == 1:
            return dict(zip(names, local_freq))
        if self.exchange is None:
            raise RuntimeError("cabs_dm with world_size > 1 needs a concept-frequency exchange")
        payload = json.dumps([names, local_freq], separators=(",", ":")).encode()
        merged: dict[str, int] = {}
        for data in self.exchange.all_gather(where.tag, where.rank, where.world_size, payload):
            rank_names, rank_freq = json.loads(data)
            for name, count in zip(rank_names, rank_freq):
                merged[name] = merged.get(name, 0) + count
        return merged
