"""`mmpretrain export`: write a run's checkpoint as open_clip files or plain safetensors.

    mmpretrain export --ckpt runs/x/checkpoints/last.ckpt --to open_clip --out exported/x
    python -c "import open_clip; open_clip.create_model_and_transforms('local-dir:exported/x')"

A sharded checkpoint directory (FSDP2, `configs/trainer/fsdp.yaml`) is consolidated on one
process first (`mmpretrain.distributed.sharded_checkpoint`).

`--to open_clip` writes `open_clip_config.json` + `open_clip_model.safetensors` (open_clip's
plain CLIP layout); `--to safetensors` writes `model.safetensors` (our layout) +
`mmpretrain_config.json`. The architecture comes from the checkpoint (ContrastiveTask records
it on save) or from `--model-cfg` (an open_clip model name or a config json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

# the model and data modules (torch, torchvision) are imported by `export`, after parsing
HELP = "export a checkpoint to open_clip (local-dir) or plain safetensors files"
OPEN_CLIP_WEIGHTS_NAME = "open_clip_model.safetensors"
SAFETENSORS_WEIGHTS_NAME = "model.safetensors"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmpretrain export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, type=Path,
                        help="a run's Lightning .ckpt (a file, or a sharded FSDP2 checkpoint "
                             "directory, consolidated here), or a weight file "
                             "(.safetensors/.pt/.bin)")
    parser.add_argument("--to", required=True, choices=("open_clip", "safetensors"))
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--model-cfg", default=None,
                        help="architecture when the checkpoint records none: an open_clip / "
                             "mmpretrain model name or an open_clip config json")
    parser.add_argument("--preprocess", default=None,
                        help="image preprocessing to record, as the data module's `preprocess` "
                             "(an open_clip MODEL or MODEL:TAG); default: CLIP mean/std, bicubic,"
                             " shortest-side resize (mmpretrain's data default)")
    return parser


def _architecture(checkpoint: Any, model_cfg: str | None) -> tuple[dict[str, Any] | None, str]:
    """(open_clip config or None, why there is none)."""
    from mmpretrain.models.checkpoint_io import read_model_cfg
    from mmpretrain.models.checkpoints import ARCHITECTURE_ERROR_KEY, ARCHITECTURE_KEY, named_model_cfg

    if model_cfg is not None:
        path = Path(model_cfg)
        return (read_model_cfg(path) if path.is_file() else named_model_cfg(model_cfg)), ""
    recorded = checkpoint.get(ARCHITECTURE_KEY) if isinstance(checkpoint, dict) else None
    if isinstance(recorded, dict):
        return recorded, ""
    reason = checkpoint.get(ARCHITECTURE_ERROR_KEY) if isinstance(checkpoint, dict) else None
    if reason:
        return None, f"its model cannot be represented as an open_clip config: {reason}"
    return None, (f"it records no model architecture (key {ARCHITECTURE_KEY!r}); pass "
                  "--model-cfg NAME_OR_JSON")


def preprocess_cfg(spec: str | None) -> dict[str, Any]:
    """The ``preprocess_cfg`` to write: mmpretrain's data default or a model's / tag's."""
    if spec is None:
        from mmpretrain.data.transforms import CLIP_MEAN, CLIP_STD

        # what our data pipeline feeds the model (mmpretrain.data.transforms, eval path)
        return {"mean": list(CLIP_MEAN), "std": list(CLIP_STD), "interpolation": "bicubic",
                "resize_mode": "shortest"}
    from mmpretrain.data.model_preprocess import preprocess_for

    cfg = preprocess_for(spec)
    cfg.pop("size")  # open_clip takes the size from the model's image tower
    return cfg


def export(ckpt: Path, to: str, out: Path, model_cfg: str | None = None,
           preprocess: str | None = None) -> list[Path]:
    """Write the export files into ``out``; returns their paths."""
    from safetensors.torch import save_file

    from mmpretrain.models.checkpoint_io import (
        MMPRETRAIN_CONFIG_NAME,
        OPEN_CLIP_CONFIG_NAME,
        extract_state_dict,
        read_checkpoint_file,
    )
    from mmpretrain.models.checkpoints import load_clip_weights, state_dict_of
    from mmpretrain.models.open_clip_layout import to_open_clip_state_dict
    from mmpretrain.models.registry import clip_from_open_clip_config

    from mmpretrain.distributed.sharded_checkpoint import consolidate_sharded_checkpoint, is_sharded_checkpoint

    checkpoint = (consolidate_sharded_checkpoint(ckpt) if is_sharded_checkpoint(ckpt)
                  else read_checkpoint_file(ckpt))
    state_dict = extract_state_dict(checkpoint, ckpt)
    cfg, why_none = _architecture(checkpoint, model_cfg)
    if cfg is None and to == "open_clip":
        raise ValueError(f"cannot export {ckpt} to open_clip: {why_none}")
    if cfg is not None:
        model = clip_from_open_clip_config(cfg)
        load_clip_weights(model, state_dict, str(ckpt))  # validates names and shapes
        state_dict = state_dict_of(model)
    out.mkdir(parents=True, exist_ok=True)
    if to == "open_clip":
        weights, config = out / OPEN_CLIP_WEIGHTS_NAME, out / OPEN_CLIP_CONFIG_NAME
        open_clip_state = to_open_clip_state_dict(state_dict, bool(cfg.get("custom_text")))
        save_file(open_clip_state, str(weights), metadata={"format": "pt"})
        honour_umask(weights)
        config.write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": preprocess_cfg(preprocess)},
                                     indent=2))
        return [config, weights]
    weights = out / SAFETENSORS_WEIGHTS_NAME
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(weights),
              metadata={"format": "pt"})
    honour_umask(weights)
    if cfg is None:
        return [weights]
    config = out / MMPRETRAIN_CONFIG_NAME
    config.write_text(json.dumps({"model_cfg": cfg, "layout": "mmpretrain",
                                  "builder": "mmpretrain.models.clip_from_open_clip_config",
                                  "preprocess_cfg": preprocess_cfg(preprocess)}, indent=2))
    return [config, weights]


def honour_umask(path: Path) -> None:
    """safetensors creates its file 0600; exported files are for sharing, so give them the
    mode any other file written here gets (0666 less the umask), like `config.write_text`."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        written = export(args.ckpt, args.to, args.out, args.model_cfg, args.preprocess)
    except (OSError, ValueError, KeyError) as err:
        print(f"mmpretrain export: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    if args.to == "open_clip":
        print(f"load with: open_clip.create_model_and_transforms('local-dir:{args.out}')")
    elif len(written) == 1:
        print("no architecture recorded: wrote weights only (no mmpretrain_config.json)")
    return 0
