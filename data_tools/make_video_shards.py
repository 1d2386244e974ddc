"""Pack videos + captions into WebDataset shards in video2dataset layout (mp4, txt, json).

Input: a folder of videos (`.mp4 .mov .mkv .webm .avi .m4v`), each with a sibling caption
file of the same stem (`clip1.mkv` + `clip1.txt`), searched recursively.

    python data_tools/make_video_shards.py videos/ --out shards/ --shard-size 500

MP4 files are stored byte for byte; other containers are remuxed (video stream copied, no
re-encoding, audio dropped) into MP4, because seeking deep into MKV/WebM is far slower. The
json holds `fps`, `duration` (seconds), `num_frames`, `width`, `height` and `source`.
Videos that PyAV cannot open or that hold no video stream, and videos without a non-empty
caption, are skipped and counted; the counts are printed at the end. Writes `sizes.json`.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402

from mmpretrain.data.wds.writer import ShardWriter  # noqa: E402

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
SKIP_REASONS = ("missing_caption", "empty_caption", "unreadable_video")


class UnreadableVideo(Exception):
    pass


def probe_and_store(path: Path) -> tuple[bytes, dict[str, Any]]:
    """(MP4 bytes, metadata): MP4 input unchanged, anything else remuxed into MP4."""
    data = path.read_bytes()
    try:
        with av.open(io.BytesIO(data)) as source:
            if not source.streams.video:
                raise UnreadableVideo(f"{path}: no video stream")
            stream = source.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            duration = (float(stream.duration * stream.time_base) if stream.duration and stream.time_base
                        else (source.duration or 0) / av.time_base)
            meta = {"fps": float(rate) if rate else None, "duration": round(duration, 3),
                    "num_frames": int(stream.frames), "width": stream.codec_context.width,
                    "height": stream.codec_context.height}
            if path.suffix.lower() in (".mp4", ".m4v"):
                return data, meta
            return _remux_to_mp4(source, stream), meta
    except av.FFmpegError as error:
        raise UnreadableVideo(f"{path}: {error}") from None


def _remux_to_mp4(source, stream) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as target:
        out_stream = target.add_stream_from_template(stream)
        for packet in source.demux(stream):
            if packet.size == 0:  # the demuxer's end-of-stream marker
                continue
            packet.stream = out_stream
            target.mux(packet)
    return buffer.getvalue()


def iter_samples(folder: Path, skipped: Counter[str]):
    videos = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    for index, video in enumerate(videos):
        caption_file = video.with_suffix(".txt")
        if not caption_file.is_file():
            skipped["missing_caption"] += 1
            continue
        caption = caption_file.read_text(encoding="utf-8").strip()
        if not caption:
            skipped["empty_caption"] += 1
            continue
        try:
            mp4, meta = probe_and_store(video)
        except UnreadableVideo:
            skipped["unreadable_video"] += 1
            continue
        key = f"{index:09d}"
        yield {"__key__": key, "mp4": mp4, "txt": caption,
               "json": {**meta, "key": key, "source": str(video.relative_to(folder))}}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path, help="a folder of videos with sibling .txt captions")
    parser.add_argument("--out", required=True, help="output directory for the shards")
    parser.add_argument("--shard-size", type=int, default=500, help="clips per shard")
    parser.add_argument("--prefix", default="shard", help="shard file name prefix")
    parser.add_argument("--overwrite", action="store_true", help="replace shards already in --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.input.is_dir():
        parser.error(f"{args.input}: expected a folder of videos + .txt captions")
    skipped: Counter[str] = Counter()
    try:
        writer = ShardWriter(args.out, args.shard_size, args.prefix, overwrite=args.overwrite)
        with writer:
            for sample in iter_samples(args.input, skipped):
                writer.write(sample)
            spec = writer.close()
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {writer.num_samples} clips in {len(writer.sizes)} shards: {spec or '(none)'}")
    print("skipped: " + ", ".join(f"{reason.replace('_', ' ')} {skipped[reason]}" for reason in SKIP_REASONS))
    return 0 if writer.num_samples else 1


if __name__ == "__main__":
    sys.exit(main())
