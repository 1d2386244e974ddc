"""Pack images + captions into WebDataset shards in img2dataset layout (jpg, txt, json).

Inputs:
  * a table (`.csv`, `.jsonl`, `.parquet`) with columns `image` (path, relative to the table's
    folder or absolute) and `caption`, optionally `key`; any other columns (e.g. `url`,
    `classes`) are copied into the sample's json;
  * a folder of images, each with a sibling caption file of the same stem (`cat.png` +
    `cat.txt`), searched recursively.

    python data_tools/make_shards.py captions.csv --out shards/ --shard-size 1000

JPEG files are stored byte for byte; other formats are re-encoded as JPEG (quality 95, alpha
composited on white). Items with a missing or unreadable image, or a missing/empty caption,
are skipped and counted; the counts are printed at the end. Writes `sizes.json`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import track  # noqa: E402

from mmpretrain.data.wds.writer import ShardWriter  # noqa: E402

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
TABLE_EXTENSIONS = {".csv", ".jsonl", ".parquet"}
REQUIRED_COLUMNS = ("image", "caption")
SKIP_REASONS = ("missing_image", "unreadable_image", "missing_caption", "empty_caption")
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


class UnreadableImage(Exception):
    pass


@dataclass
class SourceItem:
    key: str
    image_path: Path
    caption: str | None  # None: the caption file/cell does not exist
    source: str  # the image path as the input named it, kept in the json
    extra: dict[str, Any] = field(default_factory=dict)


def read_rows(table: Path) -> list[dict[str, Any]]:
    suffix = table.suffix.lower()
    if suffix == ".csv":
        with table.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    if suffix == ".jsonl":
        rows = []
        for line_number, line in enumerate(table.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{table}:{line_number}: not valid JSON ({error})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{table}:{line_number}: expected a JSON object per line")
            rows.append(row)
        return rows
    import pyarrow.parquet as pq

    return pq.read_table(table).to_pylist()


def _validate_keys(table: Path, rows: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for row_number, row in enumerate(rows, 1):
        key = str(row["key"])
        if not key or "." in key or "/" in key:
            raise ValueError(f"{table}: row {row_number}: key {key!r} must be non-empty "
                             "and contain no '.' or '/' (WebDataset splits member names there)")
        if key in seen:
            raise ValueError(f"{table}: row {row_number}: duplicate key {key!r}")
        seen.add(key)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def items_from_table(table: Path) -> list[SourceItem]:
    rows = read_rows(table)
    if rows:
        missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
        if missing:
            raise ValueError(f"{table}: missing column(s) {missing}; found {sorted(rows[0])}, "
                             f"expected {list(REQUIRED_COLUMNS)} and optionally 'key'")
    has_keys = bool(rows) and "key" in rows[0]
    if has_keys:
        _validate_keys(table, rows)
    items = []
    for index, row in enumerate(rows):
        image = str(row["image"] or "")
        extra = {k: _json_safe(v) for k, v in row.items()
                 if k not in ("key", "image", "caption") and v not in (None, "")}
        items.append(SourceItem(
            key=str(row["key"]) if has_keys else f"{index:09d}",
            image_path=table.parent / image,  # an empty path names the folder: "missing"
            caption=None if row["caption"] is None else str(row["caption"]),
            source=image,
            extra=extra,
        ))
    return items


def items_from_folder(folder: Path) -> tuple[list[SourceItem], int]:
    """Image items of `folder` and the number of caption files that have no image."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    image_stems = {p.with_suffix("") for p in images}
    orphan_captions = sum(
        1 for p in files if p.suffix == ".txt" and p.with_suffix("") not in image_stems
    )
    items = []
    for index, image in enumerate(images):
        caption_file = image.with_suffix(".txt")
        caption = caption_file.read_text(encoding="utf-8") if caption_file.is_file() else None
        items.append(SourceItem(f"{index:09d}", image, caption, str(image.relative_to(folder))))
    return items, orphan_captions


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_as_jpeg(path: Path, quality: int) -> tuple[bytes, int, int]:
    """(JPEG bytes, width, height); JPEG input is returned unchanged after a full decode."""
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            width, height = image.size
            if image.format == "JPEG":
                return data, width, height
            encoded = io.BytesIO()
            _to_rgb(image).save(encoded, format="JPEG", quality=quality)
    except _IMAGE_ERRORS as error:
        raise UnreadableImage(f"{path}: {error}") from None
    return encoded.getvalue(), width, height


def iter_samples(items: list[SourceItem], skipped: Counter[str], quality: int,
                 show_progress: bool) -> Iterator[dict[str, Any]]:
    for item in track(items, description="packing", console=Console(stderr=True),
                      transient=True, disable=not show_progress):
        if not item.image_path.is_file():
            skipped["missing_image"] += 1
            continue
        if item.caption is None:
            skipped["missing_caption"] += 1
            continue
        caption = item.caption.strip()
        if not caption:
            skipped["empty_caption"] += 1
            continue
        try:
            jpeg, width, height = load_as_jpeg(item.image_path, quality)
        except UnreadableImage:
            skipped["unreadable_image"] += 1
            continue
        meta = {**item.extra, "key": item.key, "width": width, "height": height,
                "source": item.source}
        yield {"__key__": item.key, "jpg": jpeg, "txt": caption, "json": meta}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path,
                        help="a .csv/.jsonl/.parquet table or a folder of images + .txt captions")
    parser.add_argument("--out", required=True, help="output directory for the shards")
    parser.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    parser.add_argument("--prefix", default="shard", help="shard file name prefix")
    parser.add_argument("--jpeg-quality", type=int, default=95,
                        help="quality for re-encoded non-JPEG images")
    parser.add_argument("--overwrite", action="store_true", help="replace shards already in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    source: Path = args.input
    skipped: Counter[str] = Counter()
    try:
        if source.is_dir():
            items, orphan_captions = items_from_folder(source)
            skipped["missing_image"] += orphan_captions
        elif source.is_file() and source.suffix.lower() in TABLE_EXTENSIONS:
            items = items_from_table(source)
        else:
            parser.error(f"{source}: expected a folder or a file ending in "
                         f"{sorted(TABLE_EXTENSIONS)}")
        writer = ShardWriter(args.out, args.shard_size, args.prefix, overwrite=args.overwrite)
        with writer:
            for sample in iter_samples(items, skipped, args.jpeg_quality, not args.quiet):
                writer.write(sample)
            spec = writer.close()
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {writer.num_samples} samples in {len(writer.sizes)} shards: {spec or '(none)'}")
    print("skipped: " + ", ".join(f"{reason.replace('_', ' ')} {skipped[reason]}"
                                   for reason in SKIP_REASONS))
    return 0 if writer.num_samples else 1


if __name__ == "__main__":
    sys.exit(main())
