"""`mmpretrain models`: every open_clip architecture, how mmpretrain builds it, its pretrained tags.

    mmpretrain models                      # all architectures, native/wrapped counts at the end
    mmpretrain models 'ViT-B-*' --params   # with parameter counts (meta-device builds)
    mmpretrain models --wrapped --json

native: our towers (our attention backend; a timm trunk for timm image towers), open_clip's
state-dict layout. wrapped: the text tower is open_clip's Hugging Face encoder. Tags come from
open_clip's pretrained table (offline); weights of a tag load from the local HF cache only.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from typing import Any

HELP = "list open_clip architectures: native or wrapped, image size, params, pretrained tags"


def _towers(cfg: dict[str, Any]) -> tuple[str, str]:
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    if vision.get("timm_model_name"):
        image = f"timm:{vision['timm_model_name']}"
    elif isinstance(vision.get("layers"), (list, tuple)):
        image = "ModifiedResNet"
    else:
        image = "ViT"
    text_tower = f"hf:{text['hf_model_name']}" if text.get("hf_model_name") else "transformer"
    if "multimodal_cfg" in cfg:
        text_tower += "+decoder"
    return image, text_tower


def describe(name: str, with_params: bool = False) -> dict[str, Any]:
    """One row: name, kind, towers, image size, pretrained tags (and parameter count)."""
    import open_clip

    cfg = open_clip.get_model_config(name)
    image, text = _towers(cfg)
    size = cfg["vision_cfg"].get("image_size", 224)
    row = {"name": name, "kind": "wrapped" if text.startswith("hf:") else "native",
           "image_tower": image, "text_tower": text,
           "image_size": size if isinstance(size, int) else size[0],
           "quick_gelu": bool(cfg.get("quick_gelu")),
           "pretrained": open_clip.list_pretrained_tags_by_model(name)}
    if with_params:
        row["params"] = parameter_count(name)
    return row


def parameter_count(name: str) -> int | None:
    """Parameters of our build of ``name`` (meta device, no memory); None when a wrapped
    tower's HF config is not in the local cache."""
    from mmpretrain.models.checkpoints import from_open_clip
    from mmpretrain.models.meta_build import meta_device

    try:
        with meta_device():
            model = from_open_clip(name, attn_backend="sdpa")
    except FileNotFoundError:
        return None
    return sum(p.numel() for p in model.parameters())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmpretrain models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patterns", nargs="*", help="shell-style name patterns (default: all)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--native", action="store_true", help="only natively built architectures")
    kind.add_argument("--wrapped", action="store_true", help="only wrapped (HF text) ones")
    parser.add_argument("--params", action="store_true",
                        help="add parameter counts (builds each model on the meta device)")
    parser.add_argument("--json", action="store_true", help="one JSON list instead of a table")
    return parser


def _format(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'architecture':34s} {'kind':8s} {'image tower':36s} {'text tower':30s} "
             f"{'size':>4s} {'params':>8s}  pretrained tags"]
    for row in rows:
        params = row.get("params")
        shown = "-" if params is None else f"{params / 1e6:.1f}M"
        tags = ", ".join(row["pretrained"]) or "-"
        lines.append(f"{row['name']:34s} {row['kind']:8s} {row['image_tower']:36s} "
                     f"{row['text_tower']:30s} {row['image_size']:4d} {shown:>8s}  {tags}")
    native = sum(row["kind"] == "native" for row in rows)
    lines.append(f"{len(rows)} architectures: {native} native, {len(rows) - native} wrapped")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    import open_clip

    names = [name for name in open_clip.list_models()
             if not args.patterns or any(fnmatch.fnmatch(name, p) for p in args.patterns)]
    rows = [describe(name, args.params) for name in names]
    if args.native or args.wrapped:
        rows = [row for row in rows if (row["kind"] == "native") == args.native]
    if not rows:
        print(f"mmpretrain models: no architecture matches {args.patterns}", file=sys.stderr)
        return 2
    print(json.dumps(rows, indent=1) if args.json else _format(rows))
    return 0
