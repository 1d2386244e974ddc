"""A trained two-tower model ready for inference on PIL images and strings.

`load_run_model(RUN_DIR)` rebuilds the task from the run's saved config (LightningCLI writes
it next to the logs) and loads `checkpoints/last.ckpt` with `weights_only=True`. Any model
with `encode_image(images_B3HW)` / `encode_text(tokens_BL)` works with the helpers here, so
an open_clip model wraps the same way: `InferenceModel(model, preprocess, tokenizer)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from mmpretrain.data.tokenizer import Tokenizer
from mmpretrain.data.transforms import ImageTransform
from mmpretrain.workflow.run_logs import read_config

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


@dataclass
class InferenceModel:
    model: nn.Module
    transform: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    device: str = "cpu"

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> torch.Tensor:
        """L2-normalized image embeddings [N, D]."""
        feats = []
        for start in range(0, len(images), batch_size):
            batch_B3HW = torch.stack([self.transform(image) for image in images[start:start + batch_size]])
            feats.append(F.normalize(self.model.encode_image(batch_B3HW.to(self.device)).float(), dim=-1))
        return torch.cat(feats).cpu()

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """L2-normalized text embeddings [N, D]."""
        feats = []
        for start in range(0, len(texts), batch_size):
            tokens_BL = self.tokenizer(list(texts[start:start + batch_size]))
            feats.append(F.normalize(self.model.encode_text(tokens_BL.to(self.device)).float(), dim=-1))
        return torch.cat(feats).cpu()

    @torch.no_grad()
    def logit_scale(self) -> float:
        """The model's learned temperature (exp of `logit_scale`), CLIP's 100 when it has none."""
        scale = getattr(self.model, "scale", None)
        if callable(scale):
            return float(scale())
        raw = getattr(self.model, "logit_scale", None)
        return float(raw.exp()) if isinstance(raw, torch.Tensor) else 100.0


def _instantiate_task(model_config: dict[str, Any], source: Path) -> nn.Module:
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningModule

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningModule, "model", required=True)
    try:
        config = parser.parse_object({"model": model_config})
        return parser.instantiate_classes(config).model
    except Exception as exn:  # noqa: BLE001 - jsonargparse raises several types for bad configs
        raise ValueError(f"{source}: cannot build the model from its 'model' section: {exn}") from exn


def _resolve(path: Path) -> tuple[Path, Path]:
    """(run dir, checkpoint) from a run dir or a checkpoint inside `RUN_DIR/checkpoints/`."""
    if path.is_dir():
        return path, path / LAST_CHECKPOINT
    if path.is_file() and path.parent.name == "checkpoints":
        return path.parent.parent, path
    raise FileNotFoundError(f"{path}: expected a run directory or RUN_DIR/checkpoints/<name>.ckpt")


def load_run_model(run_dir_or_checkpoint: str | Path, device: str = "cpu") -> InferenceModel:
    """Model, eval transform and tokenizer of a run, with the checkpoint's weights."""
    run_dir, checkpoint = _resolve(Path(run_dir_or_checkpoint))
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no checkpoint (has the run trained?)")
    config = read_config(run_dir)
    if "model" not in config:
        raise ValueError(f"{run_dir}: no saved config with a 'model' section under logs/")
    task = _instantiate_task(config["model"], run_dir)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if "state_dict" not in state:
        raise ValueError(f"{checkpoint}: not a Lightning checkpoint (no 'state_dict')")
    task.load_state_dict(state["state_dict"])
    model = getattr(task, "model", task).to(device).eval()
    data_args = (config.get("data") or {}).get("init_args") or {}
    # the towers fix what they accept; the data config is the fallback for towers that do not say
    image_size = getattr(getattr(model, "visual", None), "image_size", None) or data_args.get("image_size", 224)
    context_length = (getattr(getattr(model, "text", None), "context_length", None)
                      or data_args.get("context_length", 77))
    return InferenceModel(model, ImageTransform(int(image_size), train=False), Tokenizer(int(context_length)), device)
