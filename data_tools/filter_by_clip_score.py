"""Offline score filtering (DataComp / DFN style): keep the image-text pairs a CLIP model scores best.

    python data_tools/filter_by_clip_score.py data/cc3m --out data/cc3m-top30 \
        --config runs/clip/logs/version_0/config.yaml --checkpoint runs/clip/checkpoints/last.ckpt \
        --keep-fraction 0.3          # or --threshold 0.25

The model is one of our runs: `--config` is its YAML (the saved config.yaml or the experiment
files, whose `model` section is instantiated) and `--checkpoint` its Lightning .ckpt, read
with torch.load(weights_only=True). Each pair is scored by the cosine of its image and text
embeddings (eval transform, the config's image size and context length). Pass 1 scores every
sample, pass 2 writes the kept ones with `clip_score` added to their json; samples that
cannot be decoded are dropped and counted. Writes shards + sizes.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import yaml  # noqa: E402
from jsonargparse import ArgumentParser  # noqa: E402
from lightning.pytorch import LightningModule  # noqa: E402

from mmpretrain.data.sources.image_text import ImageTextDecoder  # noqa: E402
from mmpretrain.data.tokenizer import Tokenizer  # noqa: E402
from mmpretrain.data.transforms import ImageTransform  # noqa: E402
from mmpretrain.data.wds.rewrite import iter_raw_samples, rewrite_shards  # noqa: E402
from mmpretrain.data.wds.skips import SkipCounter, SkipSample  # noqa: E402


def load_config(paths: list[str]) -> dict:
    """Merge YAML files (later ones override `model`/`data` sections)."""
    merged: dict = {}
    for path in paths:
        try:
            node = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exn:
            raise ValueError(f"cannot read config {path!r}: {exn}") from exn
        merged.update({k: v for k, v in node.items() if k in ("model", "data")})
    if "model" not in merged:
        raise ValueError(f"no `model` section in {paths}")
    return merged


def build_task(config: dict) -> LightningModule:
    """The LightningModule of the config's `model` section, freshly initialised."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningModule, "model", required=True)
    return parser.instantiate(parser.parse_object({"model": config["model"]})).model


def load_task(config: dict, checkpoint: str) -> LightningModule:
    task = build_task(config)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exn:
        raise ValueError(f"cannot load checkpoint {checkpoint!r} with weights_only=True: {exn}") from exn
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ValueError(f"{checkpoint}: expected a Lightning checkpoint with a 'state_dict'")
    task.load_state_dict(state["state_dict"])
    return task.eval()


def build_decoder(config: dict) -> ImageTextDecoder:
    data_args = (config.get("data") or {}).get("init_args", {})
    tokenizer = Tokenizer(int(data_args.get("context_length", 77)))
    return ImageTextDecoder(ImageTransform(int(data_args.get("image_size", 224)), train=False), tokenizer)


@torch.no_grad()
def score_shards(shards: str, task: LightningModule, decoder: ImageTextDecoder, batch_size: int) -> tuple[dict, dict]:
    """{key: cosine(image, text)} for every decodable sample, and skip counts."""
    scores, skips, pending = {}, SkipCounter(), []

    def flush() -> None:
        batch = decoder.collate(pending)
        image = task.model.encode_image(batch["image"], normalize=True)
        text = task.model.encode_text(batch["text"], normalize=True)
        scores.update(zip(batch["key"], (image * text).sum(-1).tolist()))
        pending.clear()

    for raw in iter_raw_samples(shards, skips):
        try:
            pending.append(decoder(raw))
        except SkipSample as skip:
            skips.add(skip.reason)
            continue
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    return scores, skips.to_dict()


def cutoff(scores: dict[str, float], keep_fraction: float | None, threshold: float | None) -> float:
    if threshold is not None:
        return threshold
    ranked = sorted(scores.values(), reverse=True)
    return ranked[max(1, round(keep_fraction * len(ranked))) - 1] if ranked else float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shards", help="input shard spec (directory, brace pattern or list)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--config", required=True, nargs="+", help="the scoring run's YAML file(s)")
    parser.add_argument("--checkpoint", required=True, help="the scoring run's Lightning .ckpt")
    rule = parser.add_mutually_exclusive_group(required=True)
    rule.add_argument("--keep-fraction", type=float, help="keep this top fraction (DFN ~0.15, DataComp 0.3)")
    rule.add_argument("--threshold", type=float, help="keep pairs with cosine >= this")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--overwrite", action="store_true", help="replace shards already in --out")
    args = parser.parse_args(argv)
    if args.keep_fraction is not None and not 0 < args.keep_fraction <= 1:
        parser.error("--keep-fraction must be in (0, 1]")
    config = load_config(args.config)
    task = load_task(config, args.checkpoint)
    scores, skips = score_shards(args.shards, task, build_decoder(config), args.batch_size)
    limit = cutoff(scores, args.keep_fraction, args.threshold)

    def keep(raw):
        score = scores.get(raw["__key__"])
        if score is None or score < limit:
            return None
        meta = json.loads(raw["json"]) if "json" in raw else {}
        return {**raw, "json": {**meta, "clip_score": round(score, 6)}}

    report = rewrite_shards(args.shards, args.out, keep, args.shard_size, args.overwrite)
    print(f"kept {report.written} of {report.read} samples (cosine >= {limit:.4f}; undecodable: "
          f"{skips or 'none'}): {report.spec}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
