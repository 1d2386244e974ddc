"""Add CABS concept annotations (`classes` in each sample's json) to an image-text shard set.

    # caption-derived: vocabulary matching with plural/synonym handling and number words
    python data_tools/annotate_concepts.py data/cc3m --out data/cc3m-concepts \
        --vocabulary concepts.txt --synonyms synonyms.json
    # detector output (e.g. RAM++ + GroundingDINO) from a parquet keyed by sample key
    python data_tools/annotate_concepts.py data/cc3m --out data/cc3m-concepts --parquet dets.parquet

Vocabulary: a .txt file (one concept per line) or a classes.json (`classnames`). Synonyms: a
json object {concept: [other phrasing, ...]}. Parquet: columns `key`, `classes`, optional
`bounding_boxes`, `scores`, `tags`, `tag_probs`; they are copied into the json. Samples that
already carry `classes` keep them unless --replace. Writes shards + sizes.json, and with
--concepts-parquet also a `key`/`classes` parquet of the result: given to training as
`data.init_args.selection.annotations`, it spares CABS selection the parsing of every sidecar
(see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmpretrain.data.sampling.caption_concepts import CaptionConceptMatcher  # noqa: E402
from mmpretrain.data.sampling.concepts import write_concept_table  # noqa: E402
from mmpretrain.data.wds.rewrite import RawSample, rewrite_shards  # noqa: E402

PARQUET_FIELDS = ("classes", "bounding_boxes", "scores", "tags", "tag_probs")


def load_vocabulary(path: str) -> list[str]:
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".json"):
        classnames = json.loads(text).get("classnames")
        if not isinstance(classnames, list):
            raise ValueError(f"{path}: expected a classes.json with a 'classnames' list")
        return [str(c) for c in classnames]
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def load_parquet_annotations(path: str) -> dict[str, dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if "key" not in table.column_names or "classes" not in table.column_names:
        raise ValueError(f"{path}: expected columns 'key' and 'classes', found {table.column_names}")
    columns = [c for c in PARQUET_FIELDS if c in table.column_names]
    rows = table.select(["key", *columns]).to_pylist()
    return {str(row["key"]): {c: row[c] for c in columns if row[c] is not None} for row in rows}


def _metadata(raw: RawSample) -> dict:
    try:
        meta = json.loads(raw["json"]) if "json" in raw else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def make_annotator(matcher: CaptionConceptMatcher | None, table: dict[str, dict] | None, replace: bool,
                   written: dict[str, list] | None = None):
    """`written`, when given, collects each output sample's key -> classes."""
    def annotate(raw: RawSample) -> RawSample:
        out = _annotated(raw)
        if written is not None:
            classes = (_metadata(out) if isinstance(out["json"], bytes) else out["json"]).get("classes")
            written[raw["__key__"]] = classes if isinstance(classes, list) else []
        return out

    def _annotated(raw: RawSample) -> RawSample:
        meta = _metadata(raw)
        if "classes" in meta and not replace:
            return raw
        if table is not None:
            meta.update(table.get(raw["__key__"], {"classes": []}))
        else:
            caption = raw.get("txt", b"").decode("utf-8", errors="replace")
            meta["classes"] = matcher(caption)
            for stale in ("bounding_boxes", "scores"):
                meta.pop(stale, None)
        return {**raw, "json": meta}
    return annotate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shards", help="input shard spec (directory, brace pattern or list)")
    parser.add_argument("--out", required=True, help="output directory")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--vocabulary", help="concepts: .txt (one per line) or classes.json")
    source.add_argument("--parquet", help="detector annotations keyed by sample key")
    parser.add_argument("--synonyms", help="json {concept: [synonym, ...]} (with --vocabulary)")
    parser.add_argument("--replace", action="store_true", help="overwrite existing `classes`")
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--overwrite", action="store_true", help="replace shards already in --out")
    parser.add_argument("--concepts-parquet", help="also write the key/classes table here (.parquet)")
    args = parser.parse_args(argv)
    matcher = table = None
    if args.vocabulary:
        synonyms = json.loads(Path(args.synonyms).read_text()) if args.synonyms else None
        matcher = CaptionConceptMatcher(load_vocabulary(args.vocabulary), synonyms)
    else:
        table = load_parquet_annotations(args.parquet)
    written: dict[str, list] | None = {} if args.concepts_parquet else None
    report = rewrite_shards(args.shards, args.out, make_annotator(matcher, table, args.replace, written),
                            args.shard_size, args.overwrite)
    if written is not None:
        write_concept_table(written, args.concepts_parquet)
        print(f"wrote concepts of {len(written)} samples to {args.concepts_parquet}")
    print(f"annotated {report.written} samples: {report.spec} (skipped members: {report.skips or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
