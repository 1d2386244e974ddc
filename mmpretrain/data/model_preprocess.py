"""A model's own tokenizer and image preprocessing, named the open_clip way, read offline.

``model`` is an open_clip architecture ('ViT-B-16-SigLIP'), ``local-dir:DIR`` (its
``open_clip_config.json``, tokenizer files beside it) or ``hf-hub:ORG/REPO`` in the local HF
cache; a preprocessing spec may add a pretrained tag: 'ViT-B-16-SigLIP:webli'. Used by the data
modules (``tokenizer`` / ``preprocess`` arguments) and by ``mmpretrain export``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmpretrain.data.tokenizer import HFTokenizer, Tokenizer
from mmpretrain.data.transforms import CLIP_MEAN, CLIP_STD

LOCAL_DIR, HF_HUB = "local-dir:", "hf-hub:"
# open_clip's PreprocessCfg defaults (no tag, no preprocess_cfg in the model's json)
DEFAULT_PREPROCESS = {"mean": list(CLIP_MEAN), "std": list(CLIP_STD),
                      "interpolation": "bicubic", "resize_mode": "shortest", "fill_color": 0}
_PREPROCESS_KEYS = ("size", *DEFAULT_PREPROCESS)


def _config_json(model: str) -> tuple[dict[str, Any], Path | None]:
    """(open_clip_config.json contents, its folder) for local-dir: / hf-hub: models."""
    if model.startswith(LOCAL_DIR):
        folder = Path(model[len(LOCAL_DIR):]).expanduser()
        path = folder / "open_clip_config.json"
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        repo = model[len(HF_HUB):].strip("/")
        try:
            path = Path(hf_hub_download(repo, "open_clip_config.json", local_files_only=True))
        except LocalEntryNotFoundError as err:
            raise FileNotFoundError(f"{model}: open_clip_config.json is not in the local Hugging "
                                    f"Face cache; run `huggingface-cli download {repo}` "
                                    "beforehand") from err
        folder = path.parent
    try:
        return json.loads(path.read_text()), folder
    except (OSError, json.JSONDecodeError) as err:
        raise FileNotFoundError(f"{model}: cannot read {path} ({err})") from err


def model_config(model: str) -> tuple[dict[str, Any], dict[str, Any], Path | None]:
    """(model_cfg, preprocess_cfg stored with it, folder) of an open_clip model name."""
    if model.startswith((LOCAL_DIR, HF_HUB)):
        config, folder = _config_json(model)
        return config.get("model_cfg", {}), config.get("preprocess_cfg", {}), folder
    import open_clip

    cfg = open_clip.get_model_config(model)
    if cfg is None:
        raise KeyError(f"{model!r} is not an open_clip architecture (open_clip.list_models()), "
                       "local-dir:DIR or hf-hub:REPO")
    return cfg, {}, None


def tokenizer_for(model: str, context_length: int) -> Tokenizer | HFTokenizer:
    """The tokenizer open_clip's ``get_tokenizer(model)`` would build, from local files only."""
    cfg, _, folder = model_config(model)
    text = cfg.get("text_cfg", {})
    name = text.get("hf_tokenizer_name")
    if not name:
        return Tokenizer(context_length)
    kwargs = dict(text.get("tokenizer_kwargs") or {})
    source = str(folder) if folder is not None and model.startswith(LOCAL_DIR) else name
    return HFTokenizer(source, context_length=context_length,
                       tokenizer_mode=text.get("tokenizer_mode"), **kwargs)


def preprocess_for(spec: str) -> dict[str, Any]:
    """open_clip's final preprocess cfg (size, mean, std, interpolation, resize_mode,
    fill_color) for ``MODEL`` or ``MODEL:TAG``: defaults <- the model's stored cfg <- the tag's."""
    model, tag = spec, None
    if not spec.startswith((LOCAL_DIR, HF_HUB)) and ":" in spec:
        model, tag = spec.split(":", 1)
    cfg, stored, _ = model_config(model)
    merged = {**DEFAULT_PREPROCESS, **{k: v for k, v in stored.items() if k in _PREPROCESS_KEYS}}
    if tag is not None:
        import open_clip

        tag_cfg = open_clip.get_pretrained_cfg(model, tag)
        if not tag_cfg:
            raise KeyError(f"{tag!r} is not an open_clip pretrained tag of {model!r} (tags: "
                           f"{open_clip.list_pretrained_tags_by_model(model)})")
        merged.update({k: v for k, v in tag_cfg.items() if k in _PREPROCESS_KEYS})
    size = cfg.get("vision_cfg", {}).get("image_size", 224)
    merged["size"] = size if isinstance(size, int) else size[0]
    merged["mean"], merged["std"] = list(merged["mean"]), list(merged["std"])
    return merged


def image_transform_kwargs(spec: str | None) -> dict[str, Any]:
    """``ImageTransform`` keyword arguments (mean, std, interpolation, resize mode, fill) for a
    preprocessing spec; {} (CLIP's defaults) for None."""
    if spec is None:
        return {}
    cfg = preprocess_for(spec)
    return {"mean": tuple(cfg["mean"]), "std": tuple(cfg["std"]),
            "interpolation": cfg["interpolation"], "resize_mode": cfg["resize_mode"],
            "fill_color": cfg["fill_color"]}
