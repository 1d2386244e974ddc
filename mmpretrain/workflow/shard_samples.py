"""Look inside image-text shards: decoded samples, per-shard counts, concept statistics.

Reads through the training data layer (`parse_shard_spec`, `iter_tar_samples`), so what a
notebook shows is what training sees, damaged members included (they are counted, not shown).
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure
from PIL import Image

from mmpretrain.data.wds.shard_spec import ShardSpec, parse_shard_spec
from mmpretrain.data.wds.skips import SkipCounter
from mmpretrain.data.wds.tar_reader import iter_tar_samples

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")
CLASSES_FILENAME = "classes.json"


@dataclass
class ShardSample:
    key: str
    shard: str
    image: Image.Image | None
    caption: str | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def concepts(self) -> list[str]:
        """The sample's concept annotations (`classes`, repeats kept), [] when unannotated."""
        classes = self.meta.get("classes")
        return [str(c) for c in classes] if isinstance(classes, list) else []


def _decode(raw: dict[str, Any], skips: SkipCounter) -> ShardSample:
    image_bytes = next((raw[k] for k in IMAGE_KEYS if k in raw), None)
    image = None
    if image_bytes is not None:
        try:
            image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
        except Exception:  # noqa: BLE001 - PIL raises many types on corrupt input
            skips.add("decode_error")
    caption = raw["txt"].decode("utf-8", errors="replace").strip() if "txt" in raw else None
    try:
        meta = json.loads(raw["json"]) if "json" in raw else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        skips.add("bad_json")
        meta = {}
    return ShardSample(raw["__key__"], raw["__url__"], image, caption, meta if isinstance(meta, dict) else {})


def iter_shard_samples(spec: str | ShardSpec, skips: SkipCounter | None = None) -> Iterator[ShardSample]:
    """Every sample of every shard in spec order (no shuffling); damage is counted in `skips`."""
    spec = parse_shard_spec(spec) if isinstance(spec, str) else spec
    skips = skips if skips is not None else SkipCounter()
    for shard in spec.shards:
        for raw in iter_tar_samples(shard.path, skips):
            yield _decode(raw, skips)


def read_samples(spec: str | ShardSpec, limit: int, skips: SkipCounter | None = None) -> list[ShardSample]:
    """The first `limit` samples of the spec."""
    samples = []
    for sample in iter_shard_samples(spec, skips):
        if len(samples) >= limit:
            break
        samples.append(sample)
    return samples


def shard_table(spec: str | ShardSpec) -> list[dict[str, Any]]:
    """One row per shard: path, sample count (`sizes.json`, else counted), source index."""
    spec = parse_shard_spec(spec) if isinstance(spec, str) else spec
    return [{"shard": s.path, "samples": s.size, "source": s.source} for s in spec.with_counted_sizes().shards]


def load_zeroshot_classes(spec: str | ShardSpec) -> tuple[list[str], list[str]]:
    """(classnames, templates) from the `classes.json` beside the spec's first shard."""
    spec = parse_shard_spec(spec) if isinstance(spec, str) else spec
    path = os.path.join(os.path.dirname(os.path.abspath(spec.shards[0].path)), CLASSES_FILENAME)
    try:
        with open(path, encoding="utf-8") as f:
            classes = json.load(f)
    except (OSError, json.JSONDecodeError) as exn:
        raise ValueError(f"cannot read zero-shot classes file {path}: {exn}") from exn
    classnames, templates = classes.get("classnames"), classes.get("templates")
    if not (isinstance(classnames, list) and classnames and isinstance(templates, list) and templates):
        raise ValueError(f"{path}: expected non-empty 'classnames' and 'templates' lists")
    return [str(c) for c in classnames], [str(t) for t in templates]


def concept_counts(samples: Iterable[ShardSample]) -> Counter[str]:
    """Occurrences of each concept over the samples (an image with two stars counts twice)."""
    counts: Counter[str] = Counter()
    for sample in samples:
        counts.update(sample.concepts)
    return counts


def concepts_per_sample(samples: Iterable[ShardSample]) -> Counter[int]:
    """How many samples carry 0, 1, 2, ... concept annotations."""
    return Counter(len(sample.concepts) for sample in samples)


def bar_chart(counts: Counter, title: str, top: int | None = None, xlabel: str = "",
              sort_by_count: bool = True) -> Figure:
    """Horizontal bars of a Counter: the `top` most common (or all, in key order)."""
    items = counts.most_common(top) if sort_by_count else sorted(counts.items())[:top]
    if not items:
        raise ValueError(f"{title}: nothing to plot (no counts)")
    labels = [str(k) for k, _ in items]
    values = [v for _, v in items]
    figure = Figure(figsize=(6, 0.22 * len(items) + 1.2))
    axis = figure.subplots()
    axis.barh(range(len(items)), values, color="tab:blue")
    axis.set_yticks(range(len(items)), labels, fontsize=7)
    axis.invert_yaxis()
    axis.set_xlabel(xlabel or "count")
    axis.set_title(title)
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure
