"""Video-text contrastive pretraining: `ContrastiveTask` with a video tower.

Training is the parent's (CLIP or SigLIP loss on `batch["video"]`). Validation reports
text->video / video->text recall@1/5/10 (`t2v_r*`, `v2t_r*`) and, when the val batches carry
`foil_text` (captions with the events reordered), the temporal-order probe accuracy.
"""

from __future__ import annotations

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from mmpretrain.eval import retrieval_recall, temporal_order_accuracy
from mmpretrain.tasks.contrastive import ContrastiveTask, _default_optimizer

_VIDEO_METRIC_NAMES = {"i2t": "v2t", "t2i": "t2v"}


class VideoContrastiveTask(ContrastiveTask):
    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module | None = None,
        optimizer: OptimizerCallable = _default_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
        eval_chunk_size: int = 1024,
        temporal_probe: bool = True,
    ) -> None:
        super().__init__(model, loss, optimizer, lr_scheduler, zeroshot=False, retrieval=True,
                         eval_chunk_size=eval_chunk_size, input_key="video")
        self.temporal_probe = temporal_probe

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        outputs = {"video": self.model.encode_image(batch["video"], normalize=True).float(),
                   "text": self.model.encode_text(batch["text"], normalize=True).float()}
        if self.temporal_probe and "foil_text" in batch:
            outputs["foil"] = self.model.encode_text(batch["foil_text"], normalize=True).float()
        self._val_outputs.append(outputs)

    def compute_eval_metrics(self) -> dict[str, float]:
        width = self.model.output_dim
        videos, texts = (torch.cat([o[k] for o in self._val_outputs]) if self._val_outputs
                         else torch.zeros(0, width, device=self.device) for k in ("video", "text"))
        metrics = {}
        for name, value in retrieval_recall(videos, texts, chunk_size=self.eval_chunk_size).items():
            direction, _, rest = name.partition("_")
            metrics[f"{_VIDEO_METRIC_NAMES.get(direction, direction)}_{rest}"] = value
        if self.temporal_probe:
            # every rank joins the probe's all-reduce, also with no foils of its own
            probed = [o for o in self._val_outputs if "foil" in o]
            video, text, foil = (torch.cat([o[k] for o in probed]) if probed
                                 else torch.zeros(0, width, device=self.device) for k in ("video", "text", "foil"))
            probe = temporal_order_accuracy(video, text, foil)
            if probe["temporal_probe_count"] > 0:
                metrics.update(probe)
        return metrics
