"""Check WebDataset shards and summarise their contents.

    python data_tools/inspect_shards.py "data/shapes/shard-{000000..000003}.tar" --json report.json
    python data_tools/inspect_shards.py data/shapes          # every *.tar in the folder
    python data_tools/inspect_shards.py "s3://bucket/laion/{00000..00099}.tar" --write-sizes

Per shard and in total: samples (members grouped by key as WebDataset does), member counts
per extension, corrupt members (image that PIL cannot open+verify, invalid JSON or UTF-8,
truncated data), unreadable or truncated tar files, samples without a picture (an image, a
video such as `mp4`, or trajectory `frames.npy`) or a caption,
caption length statistics (characters and words) and agreement with `sizes.json`. Several
specs can be joined with `::` as in open_clip. Exit status is 1 when any shard is missing,
unreadable, truncated, holds corrupt members, or disagrees with sizes.json; else 0.
Shards may be URLs (s3://, gs://, https://, ...) or `pipe:` commands, streamed once each;
`--write-sizes` writes the counted sizes.json beside them (uploaded for object stores), so
exact mode can plan remote sets without scanning them.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean, median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from braceexpand import braceexpand  # noqa: E402
from PIL import Image  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import track  # noqa: E402

from mmpretrain.data.wds.remote.locations import basename_of, expand_remote_source, is_remote, parent_of  # noqa: E402
from mmpretrain.data.wds.remote.read_ahead import open_shard  # noqa: E402
from mmpretrain.data.wds.remote.sizes import shard_sizes  # noqa: E402
from mmpretrain.data.wds.remote.upload import writable_filesystem  # noqa: E402
from mmpretrain.data.wds.writer import SIZES_FILENAME, write_json_atomic  # noqa: E402

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
# what a sample can show instead of an image: video-text clips and trajectory windows
VIDEO_EXTENSIONS = ("mp4", "webm", "mkv", "avi", "mov", "frames.npy")
CAPTION_EXTENSION = "txt"
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


@dataclass
class ShardReport:
    path: str
    samples: int = 0
    members: int = 0
    extensions: Counter[str] = field(default_factory=Counter)
    corrupt_members: list[dict[str, str]] = field(default_factory=list)
    tar_error: str | None = None
    samples_missing_image: int = 0
    samples_missing_caption: int = 0
    empty_captions: int = 0
    caption_chars: array = field(default_factory=lambda: array("I"))
    caption_words: array = field(default_factory=lambda: array("I"))
    expected_samples: int | None = None

    @property
    def size_mismatch(self) -> bool:
        return self.expected_samples is not None and self.expected_samples != self.samples

    def problems(self) -> list[str]:
        found = []
        if self.tar_error:
            found.append(f"{self.path}: {self.tar_error}")
        found += [f"{self.path}: {m['member']}: {m['error']}" for m in self.corrupt_members]
        if self.size_mismatch:
            found.append(f"{self.path}: {self.samples} samples, {SIZES_FILENAME} says "
                         f"{self.expected_samples}")
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "samples": self.samples,
            "members": self.members,
            "extensions": dict(sorted(self.extensions.items())),
            "corrupt_members": self.corrupt_members,
            "tar_error": self.tar_error,
            "samples_missing_image": self.samples_missing_image,
            "samples_missing_caption": self.samples_missing_caption,
            "empty_captions": self.empty_captions,
            "caption_chars": length_stats(self.caption_chars),
            "caption_words": length_stats(self.caption_words),
            "expected_samples": self.expected_samples,
        }


def length_stats(values: array) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "mean": round(fmean(values), 3), "median": median(values),
            "max": max(values)}


def expand_spec(spec: str) -> list[Path | str]:
    """Shard paths of a brace spec, `::`-joined specs, a directory (its *.tar) or one file;
    URL and `pipe:` sources stay strings."""
    if not is_remote(spec) and Path(spec).is_dir():
        shards = sorted(Path(spec).glob("*.tar"))
        if not shards:
            raise ValueError(f"{spec}: directory holds no *.tar shards")
        return shards
    return [p for part in spec.split("::") for p in
            (expand_remote_source(part.strip(), spec) if is_remote(part.strip())
             else [Path(p) for p in braceexpand(part.strip())])]


def split_member_name(name: str) -> tuple[str, str] | None:
    """(key, extension) as WebDataset splits them: at the first '.' of the basename."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    if not dot or not stem:
        return None
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def check_member(report: ShardReport, ext: str, data: bytes, full_decode: bool) -> str | None:
    """Error message for a corrupt member, else None; records caption lengths."""
    last_ext = ext.rsplit(".", 1)[-1]
    if last_ext in IMAGE_EXTENSIONS:
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.verify()
            if full_decode:
                with Image.open(io.BytesIO(data)) as image:
                    image.load()
        except _IMAGE_ERRORS as error:
            return f"undecodable image ({error})"
    elif last_ext in ("json", CAPTION_EXTENSION):
        try:
            text = data.decode("utf-8")
            if last_ext == "json":
                json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            return f"invalid {last_ext} ({error})"
        if ext == CAPTION_EXTENSION:
            caption = text.strip()
            report.empty_captions += not caption
            report.caption_chars.append(len(caption))
            report.caption_words.append(len(caption.split()))
    return None


def _finish_sample(report: ShardReport, extensions: set[str]) -> None:
    report.samples += 1
    report.samples_missing_image += not any(ext in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS for ext in extensions)
    report.samples_missing_caption += CAPTION_EXTENSION not in extensions


def _check_tail(handle, end_offset: int) -> str | None:
    # tarfile stops silently at an invalid header; what follows the last member must be the
    # zero-filled end-of-archive blocks, anything else is corruption or truncation.
    handle.seek(end_offset)
    tail = handle.read()
    if not tail:
        return "no end-of-archive marker (file is truncated)"
    if tail.strip(b"\0"):
        return f"unreadable data at byte {end_offset} (corrupt header or truncated member)"
    return None


def inspect_shard(path: Path | str, full_decode: bool = False) -> ShardReport:
    report = ShardReport(str(path))
    remote = is_remote(str(path))
    if not remote and not Path(path).is_file():
        report.tar_error = "file not found"
        return report
    try:
        handle = open_shard(str(path))
    except OSError as error:
        report.tar_error = f"cannot open ({error})"
        return report
    with handle:
        _inspect_members(report, handle, full_decode)
    return report


def _inspect_members(report: ShardReport, handle, full_decode: bool) -> None:
    try:
        tar = tarfile.open(fileobj=handle, mode="r|")
    except Exception as error:  # noqa: BLE001 - tar errors and remote faults alike
        report.tar_error = f"not a readable tar archive ({error})"
        return
    key, extensions, member_name = None, set(), "(start)"
    with tar:
        try:
            for info in tar:
                member_name = info.name
                if not info.isfile():
                    continue
                report.members += 1
                split = split_member_name(info.name)
                if split is None:
                    report.corrupt_members.append(
                        {"member": info.name, "error": "no key.extension"})
                    continue
                if split[0] != key:
                    if key is not None:
                        _finish_sample(report, extensions)
                    key, extensions = split[0], set()
                data = tar.extractfile(info).read()
                if len(data) != info.size:  # some Python versions return short reads silently
                    raise tarfile.ReadError(f"{len(data)} of {info.size} bytes present")
                if split[1] in extensions:
                    report.corrupt_members.append(
                        {"member": info.name, "error": "duplicate member"})
                extensions.add(split[1])
                report.extensions[split[1]] += 1
                error = check_member(report, split[1], data, full_decode)
                if error:
                    report.corrupt_members.append({"member": info.name, "error": error})
            report.tar_error = _check_tail(handle, tar.offset)
        except Exception as error:  # noqa: BLE001 - tar, OS and remote stream faults alike
            report.tar_error = f"truncated or corrupt at member {member_name} ({error})"
    if key is not None:
        _finish_sample(report, extensions)


def _location_dir(path: str) -> tuple[str, bool]:
    if is_remote(path):
        parent = parent_of(path)
        return (parent, True) if is_remote(parent) else (parent or ".", False)
    return str(Path(path).parent), False


def attach_expected_sizes(reports: list[ShardReport]) -> None:
    if any(is_remote(r.path) for r in reports):
        by_dir: dict[tuple[str, bool], list[ShardReport]] = {}
        for report in reports:
            by_dir.setdefault(_location_dir(report.path), []).append(report)
        for (directory, remote), group in by_dir.items():
            sizes = shard_sizes(directory, [basename_of(r.path) for r in group], remote)
            for report in group:
                report.expected_samples = sizes.get(basename_of(report.path))
        return
    sizes_by_dir: dict[Path, dict[str, int]] = {}
    for report in reports:
        folder = Path(report.path).parent
        if folder not in sizes_by_dir:
            sizes_file = folder / SIZES_FILENAME
            try:
                sizes_by_dir[folder] = json.loads(sizes_file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                sizes_by_dir[folder] = {}
        report.expected_samples = sizes_by_dir[folder].get(Path(report.path).name)


def write_sizes(reports: list[ShardReport]) -> list[str]:
    """Write (merge into) sizes.json beside the inspected intact shards; returns where."""
    by_dir: dict[tuple[str, bool], dict[str, int]] = {}
    for report in reports:
        if report.tar_error is None:
            by_dir.setdefault(_location_dir(report.path), {})[basename_of(report.path)] = report.samples
    written = []
    for (directory, remote), counts in by_dir.items():
        location = f"{directory.rstrip('/')}/{SIZES_FILENAME}" if remote else str(Path(directory) / SIZES_FILENAME)
        merged = {**shard_sizes(directory, [], remote), **counts}
        payload = json.dumps(merged, indent=2, sort_keys=True) + "\n"
        if remote:
            fs = writable_filesystem(location)
            fs.pipe_file(location, payload.encode())
            fs.invalidate_cache()
        else:
            write_json_atomic(Path(location), merged)
        written.append(location)
    return written


def total_report(reports: list[ShardReport]) -> dict[str, Any]:
    total = ShardReport("total")
    for report in reports:
        total.samples += report.samples
        total.members += report.members
        total.extensions.update(report.extensions)
        total.samples_missing_image += report.samples_missing_image
        total.samples_missing_caption += report.samples_missing_caption
        total.empty_captions += report.empty_captions
        total.caption_chars.extend(report.caption_chars)
        total.caption_words.extend(report.caption_words)
    summary = total.to_json()
    del summary["path"], summary["tar_error"]
    summary["shards"] = len(reports)
    summary["corrupt_members"] = sum(len(r.corrupt_members) for r in reports)
    summary["bad_shards"] = sum(r.tar_error is not None for r in reports)
    known = [r.expected_samples for r in reports]
    summary["expected_samples"] = None if None in known else sum(known)
    return summary


def format_stats(stats: dict[str, float] | None) -> str:
    if stats is None:
        return "-"
    return (f"min {stats['min']} / mean {stats['mean']:.1f} / median {stats['median']}"
            f" / max {stats['max']}")


def format_line(name: str, data: dict[str, Any]) -> str:
    extensions = " ".join(f"{ext}={n}" for ext, n in data["extensions"].items()) or "-"
    expected = data["expected_samples"]
    corrupt = data["corrupt_members"]
    return (f"{name}: samples {data['samples']}"
            + (f" (sizes.json {expected})" if expected is not None else "")
            + f" | members {extensions}"
            + f" | corrupt {corrupt if isinstance(corrupt, int) else len(corrupt)}"
            + f" | no image/video {data['samples_missing_image']}"
            + f" | no caption {data['samples_missing_caption']}"
            + f" | empty caption {data['empty_captions']}"
            + (f" | ERROR {data['tar_error']}" if data.get("tar_error") else ""))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", help="brace spec, '::'-joined specs, a directory or a .tar file")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the report as JSON")
    parser.add_argument("--full-decode", action="store_true",
                        help="decode every image fully (slower; verify() skips pixel data)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--write-sizes", action="store_true",
                        help="write the counted samples of intact shards into sizes.json beside them "
                             "(local folder or object-store prefix)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        paths = expand_spec(args.spec)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    reports = [inspect_shard(path, args.full_decode)
               for path in track(paths, description="inspecting", console=Console(stderr=True),
                                 transient=True, disable=args.quiet)]
    attach_expected_sizes(reports)
    total = total_report(reports)
    problems = [problem for report in reports for problem in report.problems()]
    for report in reports:
        print(format_line(basename_of(report.path), report.to_json()))
    print(format_line(f"TOTAL ({len(reports)} shards)", total))
    print(f"caption chars: {format_stats(total['caption_chars'])}")
    print(f"caption words: {format_stats(total['caption_words'])}")
    for problem in problems:
        print(f"PROBLEM {problem}")
    if args.write_sizes:
        for location in write_sizes(reports):
            print(f"wrote {location}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"spec": args.spec, "shards": [r.to_json() for r in reports],
                   "total": total, "problems": problems, "ok": not problems}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
