"""Callback loaded by the DDP test through `--trainer.callbacks+=`: on the first step it checks,
with the step's own weights and batches, what the task's contrastive loss computes across ranks."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.pytorch import Callback


def _clip_loss(image, text, scale) -> float:
    logits = scale * image @ text.T
    labels = torch.arange(image.shape[0])
    return float((F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2)


class GatherProbe(Callback):
    """Writes RUN_DIR/gather_probe.json: the rank-mean of the task loss, the single-process loss
    on the concatenated global batch, and the rank-mean of a loss that ignores other ranks."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step != 0:
            return
        with torch.no_grad():
            out = pl_module.model(batch["image"], batch["text"])
            image, text, scale = out["image_features"], out["text_features"], out["logit_scale"]
            task_loss = pl_module.loss(image, text, scale)
            world = dist.get_world_size()
            images, texts = [torch.empty_like(image) for _ in range(world)], [torch.empty_like(text) for _ in range(world)]
            dist.all_gather(images, image)
            dist.all_gather(texts, text)
            values = torch.tensor([float(task_loss), _clip_loss(image, text, scale)])
            dist.all_reduce(values)
            values /= world
        if trainer.is_global_zero:
            result = {"task_loss_rank_mean": float(values[0]), "local_only_rank_mean": float(values[1]),
                      "global_batch_loss": _clip_loss(torch.cat(images), torch.cat(texts), scale),
                      "global_batch": sum(x.shape[0] for x in images)}
            Path(trainer.default_root_dir, "gather_probe.json").write_text(json.dumps(result))
