"""Convert MMC4-style interleaved documents (json lines + local image files) to WebDataset shards.

    python data_tools/mmc4_to_wds.py --input docs_shard_0_v2.jsonl --images-dir images/ --out data/mmc4

Input: one json object per line (`.jsonl`), MMC4 layout: `text_list` (sentences) and
`image_info` (list of `{image_name, matched_text_index, matched_sim}`); each image is placed
before the sentence it is matched to, in `image_info` order. Images below `--min-similarity`
or whose file is missing under `--images-dir` are left out. Documents that keep no image are
dropped. Output: one sample per document, `{key}.json` with position-aligned `texts`/`images`
(the schema of `mmpretrain/data/sources/interleaved.py`) and the images as `{key}.img{i}.{ext}`
members (or inline base64 with `--inline-images`), plus sizes.json. Lines that are not valid
MMC4 documents are skipped and counted.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmpretrain.data.wds.writer import ShardWriter  # noqa: E402

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def read_documents(paths: list[Path], counts: Counter) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, document) for every valid json line; invalid lines are counted as `bad_line`."""
    for path in paths:
        try:
            handle = path.open(encoding="utf-8")
        except OSError as exn:
            raise SystemExit(f"error: cannot read --input {path}: {exn}") from exn
        with handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError:
                    counts["bad_line"] += 1
                    continue
                if (not isinstance(doc, dict) or not isinstance(doc.get("text_list"), list)
                        or not isinstance(doc.get("image_info", []), list)):
                    counts["bad_line"] += 1
                    continue
                yield f"{path}:{number}", doc


def convert_document(doc: dict[str, Any], images_dir: Path, min_similarity: float, inline: bool,
                     counts: Counter) -> dict[str, Any] | None:
    """A WebDataset sample (without `__key__`) for one MMC4 document, or None if no image is left."""
    sentences = doc["text_list"]
    images_at: dict[int, list[Path]] = {}
    for info in doc.get("image_info", []):
        name, index = info.get("image_name"), info.get("matched_text_index")
        if not isinstance(name, str) or not isinstance(index, int) or not 0 <= index < len(sentences):
            counts["bad_image_info"] += 1
            continue
        if float(info.get("matched_sim", 1.0)) < min_similarity:
            counts["image_below_similarity"] += 1
            continue
        path = images_dir / name
        if not path.is_file() or path.suffix.lower().lstrip(".") not in IMAGE_EXTENSIONS:
            counts["image_missing"] += 1
            continue
        images_at.setdefault(index, []).append(path)
    if not images_at:
        counts["document_without_image"] += 1
        return None
    texts: list[str | None] = []
    images: list[Any] = []
    members: dict[str, bytes] = {}
    for index, sentence in enumerate(sentences):
        for path in images_at.get(index, []):
            data = path.read_bytes()
            texts.append(None)
            if inline:
                images.append({"base64": base64.b64encode(data).decode("ascii")})
            else:
                member = f"img{len(members)}.{path.suffix.lower().lstrip('.')}"
                members[member] = data
                images.append(member)
            counts["images_written"] += 1
        if isinstance(sentence, str) and sentence.strip():
            texts.append(sentence)
            images.append(None)
    meta = {"texts": texts, "images": images}
    if isinstance(doc.get("url"), str):
        meta["url"] = doc["url"]
    return {"json": meta, **members}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", nargs="+", required=True, type=Path, help="MMC4 .jsonl files")
    parser.add_argument("--images-dir", required=True, type=Path, help="folder holding the image_name files")
    parser.add_argument("--out", required=True, help="output directory for the shards")
    parser.add_argument("--shard-size", type=int, default=1000, help="documents per shard (default: 1000)")
    parser.add_argument("--min-similarity", type=float, default=0.0,
                        help="drop images whose matched_sim is below this (MMC4 core uses 0.24; default: 0)")
    parser.add_argument("--inline-images", action="store_true", help="store images as base64 in the json")
    parser.add_argument("--overwrite", action="store_true", help="replace shards already in --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.images_dir.is_dir():
        print(f"error: --images-dir {args.images_dir} is not a directory", file=sys.stderr)
        return 1
    counts: Counter = Counter()
    try:
        with ShardWriter(args.out, args.shard_size, overwrite=args.overwrite) as writer:
            for _, doc in read_documents(args.input, counts):
                sample = convert_document(doc, args.images_dir, args.min_similarity, args.inline_images, counts)
                if sample is not None:
                    writer.write({"__key__": f"{writer.num_samples:09d}", **sample})
            written = writer.num_samples
            spec = writer.close()
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    summary = ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "nothing to report"
    if not written:
        print(f"error: no document with an image to write ({summary})", file=sys.stderr)
        return 1
    print(f"wrote {written} documents: {spec} ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
