"""Copy an image-text shard set and inject faults, for testing that training survives dirty data.

    python data_tools/corrupt_shards.py data/synthetic/train --out /tmp/dirty --seed 0

Faults (each once, on different shards/samples chosen by --seed; `--faults` picks a subset):

  truncated_tar     shard cut in the data of its (--truncate-keep + 1)-th sample
  missing_shard     shard replaced by a dangling symlink (listed, but no file: an unmounted or
                    deleted shard); its entry stays in sizes.json
  empty_shard       an extra shard that is a valid tar with no members
  garbage_image     image bytes replaced by random bytes
  zero_byte_image   image member of zero bytes
  missing_caption   caption member removed
  non_utf8_caption  caption bytes that are not UTF-8
  decompression_bomb image replaced by a tiny PNG declaring 12000 x 12000 pixels
  duplicate_key     a sample's members written a second time at the end of its shard

Writes the shards, `sizes.json` (the source counts, as a data set's stale index would say),
`classes.json` when the source has one, and `faults.json`: what was injected where, the keys
that remain valid (decodable, complete, not duplicated) and the number of samples lost.
Member bytes are copied through memory; no member name is ever used as a filesystem path.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import struct
import sys
import tarfile
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmpretrain.data.wds.tar_reader import member_key  # noqa: E402
from mmpretrain.data.wds.writer import SIZES_FILENAME  # noqa: E402

SHARD_FAULTS = ("truncated_tar", "missing_shard", "empty_shard")
SAMPLE_FAULTS = ("garbage_image", "zero_byte_image", "missing_caption", "non_utf8_caption",
                 "decompression_bomb", "duplicate_key")
FAULTS = SHARD_FAULTS + SAMPLE_FAULTS
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
BOMB_SIDE = 12_000

Member = tuple[str, bytes]


def decompression_bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A 1-bit greyscale PNG of side x side zero pixels: a few kB that would decode to side^2 pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def read_samples(path: Path) -> list[tuple[str, list[Member]]]:
    """(key, members) in file order; only regular members with an extension are kept."""
    samples: list[tuple[str, list[Member]]] = []
    with tarfile.open(path, mode="r:*") as archive:
        for info in archive:
            parsed = member_key(info.name) if info.isreg() else None
            if parsed is None:
                continue
            data = archive.extractfile(info).read()
            if not samples or samples[-1][0] != parsed[0]:
                samples.append((parsed[0], []))
            samples[-1][1].append((info.name, data))
    return samples


def write_tar(path: Path, members: list[Member]) -> list[int]:
    """Write members in order; returns each member's data offset in the file."""
    offsets = []
    with tarfile.open(path, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            offsets.append(archive.offset + tarfile.BLOCKSIZE)
            archive.addfile(info, io.BytesIO(data))
    return offsets


def _image_member(members: list[Member]) -> int:
    return next(i for i, (name, _) in enumerate(members) if name.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS)


def _caption_member(members: list[Member]) -> int:
    return next(i for i, (name, _) in enumerate(members) if name.lower().endswith(".txt"))


def corrupt_sample(fault: str, members: list[Member], rng: random.Random) -> list[Member]:
    members = list(members)
    if fault == "garbage_image":
        i = _image_member(members)
        members[i] = (members[i][0], bytes(rng.randrange(256) for _ in range(len(members[i][1]))))
    elif fault == "zero_byte_image":
        i = _image_member(members)
        members[i] = (members[i][0], b"")
    elif fault == "missing_caption":
        del members[_caption_member(members)]
    elif fault == "non_utf8_caption":
        i = _caption_member(members)
        members[i] = (members[i][0], b"caption \xff\xfe\xc3(")
    elif fault == "decompression_bomb":
        i = _image_member(members)
        members[i] = (members[i][0], decompression_bomb_png())
    return members


def corrupt(source: Path, out: Path, faults: tuple[str, ...], seed: int, truncate_keep: int) -> dict:
    shards = sorted(source.glob("*.tar"))
    sample_faults = [f for f in faults if f in SAMPLE_FAULTS]
    needed = sum(f in faults for f in ("truncated_tar", "missing_shard")) + (1 if sample_faults else 0)
    if len(shards) < needed:
        raise ValueError(f"{source}: {len(shards)} shards, the chosen faults need at least {needed}")
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob("*.tar")):
        raise FileExistsError(f"{out} already holds shards; choose an empty directory")
    rng = random.Random(seed)
    order = list(range(len(shards)))
    rng.shuffle(order)
    truncated = shards[order.pop()] if "truncated_tar" in faults else None
    missing = shards[order.pop()] if "missing_shard" in faults else None
    sample_shards = [shards[i] for i in sorted(order)]
    sources_sizes = json.loads((source / SIZES_FILENAME).read_text()) if (source / SIZES_FILENAME).exists() else {}

    valid: list[str] = []
    injected: list[dict] = []
    sizes: dict[str, int] = {}
    targets = {}  # (shard index in sample_shards, sample index) -> fault
    for n, fault in enumerate(sample_faults):
        shard_index = n % len(sample_shards)
        targets[(shard_index, rng.randrange(1, 8))] = fault
    for path in shards:
        samples = read_samples(path)
        sizes[path.name] = sources_sizes.get(path.name, len(samples))
        if path == missing:
            os.symlink(f"{path.name}.gone", out / path.name)
            injected.append({"fault": "missing_shard", "shard": path.name, "keys": [k for k, _ in samples]})
            continue
        if path == truncated:
            keep = min(truncate_keep, len(samples) - 1)
            members = [m for _, ms in samples for m in ms]
            offsets = write_tar(out / path.name, members)
            cut_member = sum(len(ms) for _, ms in samples[:keep])
            with open(out / path.name, "r+b") as f:
                f.truncate(offsets[cut_member] + 7)  # inside the first member of sample `keep`
            valid += [k for k, _ in samples[:keep]]
            injected.append({"fault": "truncated_tar", "shard": path.name, "keys": [k for k, _ in samples[keep:]]})
            continue
        shard_index = sample_shards.index(path)
        members: list[Member] = []
        duplicates: list[Member] = []
        for sample_index, (key, sample_members) in enumerate(samples):
            fault = targets.get((shard_index, sample_index))
            if fault is None or fault == "duplicate_key":
                valid.append(key)
            if fault is not None:
                injected.append({"fault": fault, "shard": path.name, "keys": [key]})
            if fault == "duplicate_key":
                duplicates = list(sample_members)
            members += corrupt_sample(fault, sample_members, rng) if fault else sample_members
        write_tar(out / path.name, members + duplicates)
    if "empty_shard" in faults:
        write_tar(out / "shard-empty.tar", [])
        sizes["shard-empty.tar"] = 0
        injected.append({"fault": "empty_shard", "shard": "shard-empty.tar", "keys": []})
    (out / SIZES_FILENAME).write_text(json.dumps(sizes, indent=1, sort_keys=True))
    if (source / "classes.json").exists():
        shutil.copyfile(source / "classes.json", out / "classes.json")
    total = sum(len(read_samples(p)) for p in shards)
    manifest = {"source": str(source), "seed": seed, "faults": injected, "valid_keys": sorted(valid),
                "source_samples": total, "samples_lost": total - len(valid)}
    (out / "faults.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="directory of intact image-text shards")
    parser.add_argument("--out", type=Path, required=True, help="new directory for the corrupted copy")
    parser.add_argument("--faults", nargs="+", choices=FAULTS, default=list(FAULTS), help="faults to inject")
    parser.add_argument("--seed", type=int, default=0, help="chooses the shards and samples hit")
    parser.add_argument("--truncate-keep", type=int, default=32,
                        help="complete samples left before the cut in the truncated shard")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        parser.error(f"source {str(args.source)!r} is not a directory of shards")
    try:
        manifest = corrupt(args.source, args.out, tuple(args.faults), args.seed, args.truncate_keep)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{len(manifest['faults'])} faults injected, {len(manifest['valid_keys'])} valid samples, "
          f"{manifest['samples_lost']} lost: {args.out / 'faults.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
