"""Offline concept balancing in the MetaCLIP style: cap the samples per concept over the set.

    python data_tools/balance_concepts.py data/cc3m-concepts --out data/cc3m-balanced --threshold 200

Pass 1 counts, per concept, the samples containing it (F_c). Pass 2 keeps a sample when any
of its concepts c is drawn with probability min(1, t / F_c) (MetaCLIP's curation: tail
concepts are always kept, head concepts subsampled to about t samples each). Draws are
seeded per (seed, sample key), so the result is deterministic. Samples without concepts are
dropped unless --keep-unannotated. Writes shards + sizes.json.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmpretrain.data.sampling.concepts import ConceptReader  # noqa: E402
from mmpretrain.data.wds.epoch_plan import seeded_rng  # noqa: E402
from mmpretrain.data.wds.rewrite import RawSample, iter_raw_samples, rewrite_shards  # noqa: E402


def count_samples_per_concept(shards: str, reader: ConceptReader) -> Counter:
    counts: Counter = Counter()
    for raw in iter_raw_samples(shards):
        counts.update(set(reader(raw)))
    return counts


def make_balancer(counts: Counter, threshold: int, seed: int, reader: ConceptReader, keep_unannotated: bool):
    def keep(raw: RawSample) -> RawSample | None:
        concepts = sorted(set(reader(raw)))
        if not concepts:
            return raw if keep_unannotated else None
        rng = seeded_rng(seed, raw["__key__"], "balance")
        return raw if any(rng.random() < threshold / counts[c] for c in concepts) else None
    return keep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shards", help="input shard spec (directory, brace pattern or list)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--threshold", type=int, required=True, help="t: target samples per concept")
    parser.add_argument("--annotations", help="parquet with columns key, classes (overrides json)")
    parser.add_argument("--keep-unannotated", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--overwrite", action="store_true", help="replace shards already in --out")
    args = parser.parse_args(argv)
    if args.threshold < 1:
        parser.error("--threshold must be >= 1")
    reader = ConceptReader(args.annotations)
    counts = count_samples_per_concept(args.shards, reader)
    report = rewrite_shards(args.shards, args.out,
                            make_balancer(counts, args.threshold, args.seed, reader, args.keep_unannotated),
                            args.shard_size, args.overwrite)
    print(f"kept {report.written} of {report.read} samples ({len(counts)} concepts, t={args.threshold}): "
          f"{report.spec}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
