"""Suite `loader`: samples/s of the training data pipeline (read + decode + augment + tokenize
+ batch), mmpretrain's `WebDataModule` vs open_clip's `open_clip_train.data.get_wds_dataset`.

Both read the same shards in resampled mode with the same batch size, worker count, shuffle
buffer, image transform (RandomResizedCrop(scale 0.9-1, bicubic) -> tensor -> CLIP normalise)
and CLIP BPE tokenizer. Timing starts after a warm-up of batches (worker start-up and the
shuffle buffer's first fill are excluded) and covers a fixed number of batches.

A per-stage breakdown (single process, one thread) shows where the time goes.
"""

from __future__ import annotations

import functools
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import (MMPRETRAIN, OPEN_CLIP, column, interleave, paired_ratio, print_table,
                               summarize)
from benchmarks.shards import ensure_shards, shard_pattern

SHUFFLE_BUFFER = 1000  # open_clip's _SAMPLE_SHUFFLE_INITIAL; its buffer then grows to 5000


@dataclass(frozen=True)
class LoaderCase:
    name: str
    source_size: int     # JPEG side in the shards
    image_size: int      # model resolution
    context_length: int
    batch_size: int
    num_workers: int
    warmup_batches: int
    measure_batches: int
    num_samples: int = 1024
    shard_size: int = 128


CASES = {
    "quick": [LoaderCase("tiny-64px from 256px JPEG", 256, 64, 32, 64, 2, 4, 12)],
    "full": [LoaderCase("tiny-64px from 256px JPEG", 256, 64, 32, 64, 2, 4, 12),
             LoaderCase("ViT-224px from 512px JPEG", 512, 224, 77, 32, 2, 4, 8, num_samples=512,
                        shard_size=64)],
}


def mmpretrain_loader(shards: Path | str, case: LoaderCase):
    """`shards`: a local directory or any shard spec (URLs, `pipe:`)."""
    from mmpretrain.data.datamodule import WebDataModule

    datamodule = WebDataModule(
        train_shards=str(shards), batch_size=case.batch_size, num_workers=case.num_workers,
        mode="resampled", shuffle_buffer=SHUFFLE_BUFFER, image_size=case.image_size,
        context_length=case.context_length, persistent_workers=False, pin_memory=False)
    return datamodule.train_dataloader()


def patch_open_clip_for_webdataset() -> None:
    """open_clip_train 3.3.0 + webdataset >= 0.2.96 crash with KeyError 'fname': webdataset now
    ends each shard with an `{}` EOF marker that open_clip's `group_by_keys_nothrow` cannot
    read (open_clip issue #935, webdataset issue #384). The fix given there, `eof_value=None`,
    restores the old stream; it changes nothing else about open_clip's pipeline."""
    import open_clip_train.data as open_clip_data
    from webdataset.tariterators import tar_file_expander

    open_clip_data.tar_file_expander = functools.partial(tar_file_expander, eof_value=None)


def open_clip_loader(shards: Path | str, case: LoaderCase):
    """open_clip_train's own loader, its argparse namespace built programmatically; `shards`: a
    local directory or a `--train-data` string (URLs and `pipe:` in webdataset's convention)."""
    import open_clip
    from open_clip_train.data import get_wds_dataset
    from open_clip_train.params import parse_args

    patch_open_clip_for_webdataset()

    train_data = shard_pattern(shards) if isinstance(shards, Path) else shards
    args = parse_args(["--train-data", train_data, "--dataset-type", "webdataset",
                       "--dataset-resampled", "--batch-size", str(case.batch_size),
                       "--workers", str(case.num_workers), "--seed", "0",
                       "--train-num-samples", str(1_000_000)])
    args.world_size, args.rank, args.local_rank, args.distributed = 1, 0, 0, False
    preprocess = open_clip.image_transform(case.image_size, is_train=True)
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=case.context_length)
    return get_wds_dataset(args, preprocess, is_train=True, epoch=0, tokenizer=tokenizer).dataloader


def _batch_size_of(batch: Any) -> int:
    images = batch["image"] if isinstance(batch, dict) else batch[0]
    return int(images.shape[0])


def time_loader(loader, case: LoaderCase) -> dict[str, float]:
    start = time.perf_counter()
    iterator = iter(loader)
    samples = 0
    try:
        for _ in range(case.warmup_batches):
            next(iterator)
        first_batches = time.perf_counter() - start
        t0 = time.perf_counter()
        for _ in range(case.measure_batches):
            samples += _batch_size_of(next(iterator))
        elapsed = time.perf_counter() - t0
    finally:
        del iterator  # shuts the workers down before the other codebase's turn
    return {"samples_per_s": samples / elapsed, "warmup_s": first_batches}


# ---- per-stage breakdown ----------------------------------------------------------------------
def _raw_samples(shards: Path, count: int) -> list[tuple[bytes, bytes]]:
    samples: dict[str, dict[str, bytes]] = {}
    for tar_path in sorted(shards.glob("*.tar")):
        with tarfile.open(tar_path) as archive:
            for member in archive:
                key, _, ext = member.name.partition(".")
                if ext in ("jpg", "txt"):
                    samples.setdefault(key, {})[ext] = archive.extractfile(member).read()
        if len(samples) >= count:
            break
    return [(s["jpg"], s["txt"]) for s in list(samples.values())[:count]]


def _per_sample_us(fn, items: list, repeats: int = 2) -> float:
    fn(items[: max(1, len(items) // 8)])  # warm caches (tokenizer BPE memo, allocator)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(items)
        best = min(best, time.perf_counter() - t0)
    return best / len(items) * 1e6


def stage_breakdown(shards: Path, case: LoaderCase, count: int = 64) -> dict[str, Any]:
    """Microseconds per sample of each pipeline stage, both codebases, on the same bytes, in
    one process with one torch thread (as in a DataLoader worker). `decode` is part of
    `image`; mmpretrain's decode is the crop-aware reduced-scale decode of `ImageTransform.load`."""
    import open_clip
    from webdataset.autodecode import ImageHandler

    from mmpretrain.data.tokenizer import Tokenizer
    from mmpretrain.data.transforms import ImageTransform, load_rgb, open_image, random_crop_box

    raw = _raw_samples(shards, count)
    jpegs = [jpg for jpg, _ in raw]
    captions = [txt.decode("utf-8").strip() for _, txt in raw]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        wds_decode = ImageHandler("pilrgb")
        oc_transform = open_clip.image_transform(case.image_size, is_train=True)
        oc_tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=case.context_length)
        ours_transform = ImageTransform(case.image_size, train=True)
        ours_tokenizer = Tokenizer(case.context_length)

        def ours_decode(data: bytes):
            image = open_image(data)
            left, top, right, bottom = random_crop_box(image.width, image.height, ours_transform.crop_scale)
            return load_rgb(image, case.image_size / min(right - left, bottom - top))

        oc = {"decode": _per_sample_us(lambda xs: [wds_decode("jpg", j) for j in xs], jpegs),
              "image": _per_sample_us(lambda xs: [oc_transform(wds_decode("jpg", j)) for j in xs], jpegs),
              "tokenize": _per_sample_us(lambda xs: torch.stack([oc_tokenizer(c)[0] for c in xs]), captions)}
        ours = {"decode": _per_sample_us(lambda xs: [ours_decode(j) for j in xs], jpegs),
                "image": _per_sample_us(lambda xs: [ours_transform.load(j) for j in xs], jpegs),
                "tokenize": _per_sample_us(ours_tokenizer, captions)}
    finally:
        torch.set_num_threads(threads)
    for stages in (oc, ours):
        stages["total"] = stages["image"] + stages["tokenize"]
    return {OPEN_CLIP: oc, MMPRETRAIN: ours}


def run(shards_root: Path, rounds: int = 3, quick: bool = False, **_: Any) -> dict[str, Any]:
    results: dict[str, Any] = {"cases": []}
    rows = []
    for case in CASES["quick" if quick else "full"]:
        shards = ensure_shards(shards_root, case.source_size, case.num_samples, case.shard_size)
        print(f"  loader: {case.name} (batch {case.batch_size}, {case.num_workers} workers)", flush=True)
        measured = interleave({
            MMPRETRAIN: lambda: time_loader(mmpretrain_loader(shards, case), case),
            OPEN_CLIP: lambda: time_loader(open_clip_loader(shards, case), case),
        }, rounds)
        ours, theirs = column(measured[MMPRETRAIN], "samples_per_s"), column(measured[OPEN_CLIP], "samples_per_s")
        ratio = paired_ratio(ours, theirs)
        stages = stage_breakdown(shards, case)
        results["cases"].append({"case": asdict(case), "shards": str(shards),
                                 MMPRETRAIN: summarize(ours), OPEN_CLIP: summarize(theirs),
                                 "ratio": ratio, "stages_us_per_sample": stages})
        rows.append([case.name, summarize(ours)["median"], summarize(theirs)["median"],
                     ratio["median_of_round_ratios"]])
        print_table(f"  per-sample cost, 1 thread (us; image = decode + augment): {case.name}",
                    ["stage", OPEN_CLIP, MMPRETRAIN],
                    [[stage, stages[OPEN_CLIP][stage], stages[MMPRETRAIN][stage]]
                     for stage in ("decode", "image", "tokenize", "total")])
    results["table"] = print_table("loader: samples/s (median of interleaved rounds)",
                                   ["case", MMPRETRAIN, OPEN_CLIP, "ratio"], rows)
    from benchmarks.loader_remote import run_remote

    case = CASES["quick"][0]
    results["remote"] = run_remote(ensure_shards(shards_root, case.source_size, case.num_samples, case.shard_size),
                                   case, rounds)
    return results
