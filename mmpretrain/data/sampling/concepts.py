"""Concept lists of raw samples, read from the json sidecar or a parquet keyed by sample key.

A sample's concepts are its CABS `classes` (one label per detected object, repeats kept).
Missing, malformed or non-string entries give no concepts (the sample is then only eligible
for DM's random fill); the decoder, not this reader, decides whether the sample is usable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmpretrain.data.sources.metadata import sample_metadata

CONCEPTS_FIELD = "classes"


def concepts_from_json(data: bytes | None, field: str = CONCEPTS_FIELD) -> list[str]:
    """Concepts of a json sidecar's bytes (malformed or missing -> none)."""
    return concepts_from_metadata(sample_metadata({"json": data}, strict=False), field)


def concepts_from_metadata(meta: dict[str, Any], field: str = CONCEPTS_FIELD) -> list[str]:
    values = meta.get(field)
    if not isinstance(values, list):
        return []
    return [v for v in values if isinstance(v, str)]


def load_concept_table(path: str, field: str = CONCEPTS_FIELD) -> dict[str, list[str]]:
    """Parquet with columns `key` and `field` (list of str) -> {key: concepts}."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["key", field])
    except (OSError, ValueError, KeyError) as exn:
        raise ValueError(f"concept annotations {path!r}: expected a parquet file with columns "
                         f"'key' and {field!r} (list of strings): {exn}") from exn
    keys, values = table.column("key").to_pylist(), table.column(field).to_pylist()
    return {str(k): [c for c in (v or []) if isinstance(c, str)] for k, v in zip(keys, values)}


def write_concept_table(classes_by_key: dict[str, list[str]], path: str, field: str = CONCEPTS_FIELD) -> None:
    """{key: concepts} -> parquet with columns `key` and `field`, as `load_concept_table` reads it."""
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"key": list(classes_by_key),
                             field: pa.array(list(classes_by_key.values()), type=pa.list_(pa.string()))}), path)


class ConceptReader:
    """raw sample -> concept list. `annotations`: optional parquet keyed by `__key__`; samples
    absent from it fall back to their json."""

    def __init__(self, annotations: str | None = None, field: str = CONCEPTS_FIELD) -> None:
        self.annotations, self.field = annotations, field
        self._table: dict[str, list[str]] | None = None

    def __call__(self, raw: dict[str, Any]) -> list[str]:
        if self.annotations is not None:
            if self._table is None:
                self._table = load_concept_table(self.annotations, self.field)
            found = self._table.get(raw.get("__key__"))
            if found is not None:
                return found
        return concepts_from_metadata(sample_metadata(raw, strict=False), self.field)


def encode_concepts(per_sample: Sequence[Sequence[str]]) -> tuple[list[list[int]], list[str]]:
    """Concept names -> ids in first-seen order; returns (ids per sample, names by id)."""
    ids: dict[str, int] = {}
    encoded = [[ids.setdefault(c, len(ids)) for c in sample] for sample in per_sample]
    return encoded, list(ids)


def sample_frequencies(encoded: Sequence[Sequence[int]], num_concepts: int) -> list[int]:
    """F_c: number of samples containing concept c (repeats within a sample count once)."""
    freq = [0] * num_concepts
    for sample in encoded:
        for c in set(sample):
            freq[c] += 1
    return freq
