"""Safe, offline reading of weight files and open_clip-style checkpoint sources.

Only safetensors and ``torch.load(weights_only=True)`` are used: a file whose unpickling would
run code is refused, never executed. Sources resolve to local files without any download:

- a weight file: ``.safetensors``, ``.pt``/``.pth``/``.bin`` (plain state dict,
  ``{"state_dict": ...}``, keys with or without ``module.``) or one of our Lightning ``.ckpt``;
- ``local-dir:DIR`` (or a plain directory): ``open_clip_config.json`` + a weight file;
- ``hf-hub:ORG/REPO``: the same two files, taken from the local Hugging Face cache only.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

LOCAL_DIR_PREFIX = "local-dir:"
HF_HUB_PREFIX = "hf-hub:"
OPEN_CLIP_CONFIG_NAME = "open_clip_config.json"
# Written by `mmpretrain export --to safetensors` next to weights in our (CustomTextCLIP) layout.
MMPRETRAIN_CONFIG_NAME = "mmpretrain_config.json"
# open_clip's own preference order for the weight file inside a model directory.
WEIGHT_FILE_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                     "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth",
                     "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth")
# Key under which ContrastiveTask holds its two-tower model in a Lightning checkpoint.
LIGHTNING_MODEL_PREFIX = "model."


@dataclass(frozen=True)
class CheckpointSource:
    """A resolved source: the weight file, and the open_clip model config when one came with it."""

    weights: Path
    model_cfg: dict[str, Any] | None = None


def read_checkpoint_file(path: str | Path) -> Any:
    """The object stored in ``path``, loaded without executing any pickled code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path), device="cpu")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"refusing to load {path}: it holds objects other than tensors and plain containers, "
            "and unpickling them could execute code (loaded with torch.load(weights_only=True)). "
            "Re-save it as a plain state dict or as .safetensors.") from err


def _strip_prefix(state_dict: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    if state_dict and all(key.startswith(prefix) for key in state_dict):
        return {key[len(prefix):]: value for key, value in state_dict.items()}
    return state_dict


def extract_state_dict(obj: Any, origin: str | Path) -> dict[str, Tensor]:
    """The model state dict inside a loaded checkpoint object (see module docstring)."""
    is_lightning = isinstance(obj, dict) and "pytorch-lightning_version" in obj
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{origin}: expected a state dict (name -> tensor) or a dict with a "
                         f"'state_dict' entry, got {type(obj).__name__}")
    if is_lightning:
        model_keys = {key[len(LIGHTNING_MODEL_PREFIX):]: value for key, value in obj.items()
                      if key.startswith(LIGHTNING_MODEL_PREFIX)}
        if not model_keys:
            raise ValueError(f"{origin}: Lightning checkpoint without '{LIGHTNING_MODEL_PREFIX}*' "
                             "weights; only ContrastiveTask-style checkpoints can be loaded")
        obj = model_keys
    return _strip_prefix(obj, "module.")


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read ``path`` safely and return the model state dict it holds."""
    return extract_state_dict(read_checkpoint_file(path), path)


def read_model_cfg(config_path: Path) -> dict[str, Any]:
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{config_path}: not a readable open_clip config json ({err})") from err
    model_cfg = config.get("model_cfg", config)
    if not isinstance(model_cfg, dict) or "embed_dim" not in model_cfg:
        raise ValueError(f"{config_path}: expected an open_clip config with 'model_cfg' "
                         "(embed_dim, vision_cfg, text_cfg)")
    return model_cfg


def _resolve_directory(directory: Path) -> CheckpointSource:
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {directory}")
    config_paths = [directory / name for name in (OPEN_CLIP_CONFIG_NAME, MMPRETRAIN_CONFIG_NAME)
                    if (directory / name).is_file()]
    model_cfg = read_model_cfg(config_paths[0]) if config_paths else None
    for name in WEIGHT_FILE_NAMES:
        if (directory / name).is_file():
            return CheckpointSource(directory / name, model_cfg)
    raise FileNotFoundError(f"{directory}: no weight file; expected one of {WEIGHT_FILE_NAMES}")


def _resolve_hf_hub(repo_id: str) -> CheckpointSource:
    """Files of an already-downloaded hub repo; never touches the network."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo_id = repo_id.strip("/")

    def cached(filename: str) -> Path | None:
        try:
            return Path(hf_hub_download(repo_id, filename, local_files_only=True))
        except LocalEntryNotFoundError:
            return None

    config_path = cached(OPEN_CLIP_CONFIG_NAME)
    for name in WEIGHT_FILE_NAMES:
        weights = cached(name)
        if weights is not None:
            return CheckpointSource(weights,
                                    read_model_cfg(config_path) if config_path else None)
    raise FileNotFoundError(
        f"hf-hub:{repo_id} is not in the local Hugging Face cache (looked for {WEIGHT_FILE_NAMES}"
        " with local_files_only=True; mmpretrain never downloads at run time). Populate the cache"
        f" beforehand, e.g. `huggingface-cli download {repo_id}`, or pass a local file.")


def resolve_source(source: str | Path) -> CheckpointSource:
    """Map a file path, ``local-dir:DIR``, a directory or ``hf-hub:REPO`` to local files."""
    text = str(source)
    if text.startswith(HF_HUB_PREFIX):
        return _resolve_hf_hub(text[len(HF_HUB_PREFIX):])
    if text.startswith(LOCAL_DIR_PREFIX):
        return _resolve_directory(Path(text[len(LOCAL_DIR_PREFIX):]).expanduser())
    path = Path(text).expanduser()
    if path.is_dir():
        return _resolve_directory(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint source {text!r} is neither a file, a directory, "
                                f"'{LOCAL_DIR_PREFIX}DIR' nor '{HF_HUB_PREFIX}ORG/REPO'")
    return CheckpointSource(path)
