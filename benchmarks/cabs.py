"""CABS selection speed: one super-batch of B raw samples (json only) -> b kept, one CPU core.

    python -m benchmarks.cabs            # B=5120, f=0.8 (b=1024), ~5 concepts/sample, 20k vocab

Samples carry Zipf-distributed concepts (exponent 1) with ~5 objects each, serialized as the
CABS json sidecar, so the timing includes reading the annotations (`cabs_dm_parquet`: the
same concepts from a `key`/`classes` parquet given as `selection.annotations`). Reports the median and p90
over `repeats` super-batches for each strategy, DM from already-parsed annotations (encoding,
frequencies, targets, greedy) and DM's greedy alone (pre-encoded ids), both
as wall-clock time and as CPU time of this process (`time.process_time`), the latter being the
cost on one core even when the machine is shared.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from mmpretrain.data.sampling.cabs import concept_targets, kept_size, select_dm
from mmpretrain.data.sampling.concepts import encode_concepts, sample_frequencies, write_concept_table
from mmpretrain.data.sampling.selection import BatchSelection, SuperBatchId, SuperBatchSelector


def synthetic_super_batch(rng: random.Random, size: int, concepts_per_sample: float,
                          vocab: int, first_key: int = 0) -> list[dict]:
    names = [f"concept{i}" for i in range(vocab)]
    cumulative, total = [], 0.0
    for rank in range(vocab):
        total += 1.0 / (rank + 1)
        cumulative.append(total)
    raws = []
    for index in range(size):
        k = max(1, round(rng.expovariate(1.0 / concepts_per_sample)))
        classes = [names[c] for c in rng.choices(range(vocab), cum_weights=cumulative, k=k)]
        meta = {"classes": classes, "bounding_boxes": [[0.1, 0.1, 0.5, 0.5]] * k, "scores": [0.9] * k}
        raws.append({"__key__": f"{first_key + index:09d}", "json": json.dumps(meta).encode()})
    return raws


def _unparsed(batch: list[dict]) -> list[dict]:
    """Fresh raw samples: the selector caches each parsed sidecar on the raw dict it was given,
    so reusing those dicts would time the parse only on the first repeat."""
    return [dict(raw) for raw in batch]


def _percentiles(wall_ms: list[float], cpu_ms: list[float]) -> dict[str, float]:
    ordered = sorted(wall_ms)
    return {"median_ms": statistics.median(ordered), "p90_ms": ordered[int(0.9 * (len(ordered) - 1))],
            "cpu_median_ms": statistics.median(cpu_ms)}


class _Timer:
    def __init__(self) -> None:
        self.wall_ms: list[float] = []
        self.cpu_ms: list[float] = []

    def __enter__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def __exit__(self, *exc) -> None:
        self.wall_ms.append(1000.0 * (time.perf_counter() - self._wall))
        self.cpu_ms.append(1000.0 * (time.process_time() - self._cpu))

    def summary(self) -> dict[str, float]:
        return _percentiles(self.wall_ms, self.cpu_ms)


def run(super_batch_size: int = 5120, filter_ratio: float = 0.8, concepts_per_sample: float = 5.0,
        vocab: int = 20000, cap: int = 10, repeats: int = 20, seed: int = 0) -> dict:
    rng = random.Random(seed)
    batches = [synthetic_super_batch(rng, super_batch_size, concepts_per_sample, vocab, b * super_batch_size)
               for b in range(min(repeats, 4))]
    result: dict = {"super_batch_size": super_batch_size, "filter_ratio": filter_ratio,
                    "concepts_per_sample": concepts_per_sample, "vocab": vocab, "cap": cap,
                    "repeats": repeats}
    # as in a loader worker (ShardStream.__iter__): the inherited heap is frozen, so the garbage
    # collections triggered by parsing thousands of sidecars walk only the young objects
    gc.freeze()
    with tempfile.TemporaryDirectory() as tmp:
        annotations = str(Path(tmp) / "concepts.parquet")
        write_concept_table({raw["__key__"]: json.loads(raw["json"])["classes"]
                             for batch in batches for raw in batch}, annotations)
        for name, strategy, parquet in (("iid", "iid", None), ("cabs_fm", "cabs_fm", None),
                                        ("cabs_dm", "cabs_dm", None),
                                        ("cabs_dm_parquet", "cabs_dm", annotations)):
            config = BatchSelection(strategy=strategy, filter_ratio=filter_ratio,
                                    super_batch_size=super_batch_size, cap=cap, seed=seed,
                                    annotations=parquet)
            selector = SuperBatchSelector(config, kept_size(super_batch_size, filter_ratio))
            selector.reader(batches[0][0])  # the parquet is loaded once per worker, not per call
            timer = _Timer()
            for r in range(repeats):
                raws = _unparsed(batches[r % len(batches)])
                with timer:
                    selector(raws, SuperBatchId(0, 0, 1, 0, r))
            result[name] = timer.summary()
    kept = kept_size(super_batch_size, filter_ratio)
    dm = SuperBatchSelector(BatchSelection(strategy="cabs_dm", filter_ratio=filter_ratio,
                                           super_batch_size=super_batch_size, cap=cap, seed=seed), kept)
    parsed = [[json.loads(raw["json"])["classes"] for raw in batch] for batch in batches]
    timer = _Timer()
    for r in range(repeats):
        with timer:
            dm._select_dm(parsed[r % len(parsed)], SuperBatchId(0, 0, 1, 0, r), random.Random(r))
    result["cabs_dm_after_parse"] = timer.summary()
    timer = _Timer()
    for r in range(repeats):
        concepts = [json.loads(raw["json"])["classes"] for raw in batches[r % len(batches)]]
        encoded, names = encode_concepts(concepts)
        freq = sample_frequencies(encoded, len(names))
        targets = concept_targets(len(names), kept, cap)
        with timer:
            select_dm(encoded, kept, targets, freq, cap, random.Random(r))
    result["cabs_dm_greedy_only"] = timer.summary()
    result["kept"] = kept
    result["mean_concepts_per_sample"] = statistics.mean(
        len(json.loads(raw["json"])["classes"]) for raw in batches[0])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--super-batch-size", type=int, default=5120)
    parser.add_argument("--filter-ratio", type=float, default=0.8)
    parser.add_argument("--concepts-per-sample", type=float, default=5.0)
    parser.add_argument("--vocab", type=int, default=20000)
    parser.add_argument("--cap", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.super_batch_size, args.filter_ratio, args.concepts_per_sample, args.vocab,
                         args.cap, args.repeats), indent=2))


if __name__ == "__main__":
    main()
