"""Print (and plot as PNG) the concept frequency distribution of a shard set.

    python data_tools/concept_stats.py data/synthetic/train --plot concepts.png --top 20

Counts come from each sample's json `classes` (or a parquet keyed by sample key): objects
per concept (repeats count) and samples containing each concept. The plot shows the
rank-frequency curve on log-log axes and the most frequent concepts.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmpretrain.data.sampling.concepts import ConceptReader  # noqa: E402
from mmpretrain.data.wds.rewrite import iter_raw_samples  # noqa: E402


def concept_statistics(shards: str, annotations: str | None = None) -> dict:
    reader = ConceptReader(annotations)
    objects, samples_with = Counter(), Counter()
    num_samples = annotated = 0
    for raw in iter_raw_samples(shards):
        concepts = reader(raw)
        num_samples += 1
        annotated += bool(concepts)
        objects.update(concepts)
        samples_with.update(set(concepts))
    total = sum(objects.values())
    entropy = -sum(n / total * math.log(n / total) for n in objects.values()) if total else 0.0
    return {"samples": num_samples, "annotated_samples": annotated, "objects": total,
            "unique_concepts": len(objects), "objects_per_sample": total / num_samples if num_samples else 0.0,
            "entropy": entropy, "objects_by_concept": dict(objects.most_common()),
            "samples_by_concept": dict(samples_with.most_common())}


def plot(stats: dict, path: str, top: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = list(stats["objects_by_concept"].values())
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.loglog(range(1, len(counts) + 1), counts, marker=".", linestyle="none")
    left.set(xlabel="concept rank", ylabel="objects", title=f"{len(counts)} concepts, rank-frequency")
    names = list(stats["objects_by_concept"])[:top]
    right.barh(names[::-1], counts[:top][::-1])
    right.set(xlabel="objects", title=f"top {len(names)} concepts")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shards", help="shard spec (directory, brace pattern or list)")
    parser.add_argument("--annotations", help="parquet with columns key, classes (overrides json)")
    parser.add_argument("--top", type=int, default=20, help="concepts listed/plotted")
    parser.add_argument("--plot", help="write a PNG plot here")
    parser.add_argument("--json", dest="json_out", help="write all statistics as json here")
    args = parser.parse_args(argv)
    stats = concept_statistics(args.shards, args.annotations)
    print(f"samples {stats['samples']}  annotated {stats['annotated_samples']}  objects {stats['objects']}  "
          f"unique concepts {stats['unique_concepts']}  objects/sample {stats['objects_per_sample']:.2f}  "
          f"entropy {stats['entropy']:.3f} nats")
    for name, n in list(stats["objects_by_concept"].items())[:args.top]:
        print(f"  {n:8d} objects  {stats['samples_by_concept'][name]:8d} samples  {name}")
    if args.plot:
        plot(stats, args.plot, args.top)
        print(f"plot written to {args.plot}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
