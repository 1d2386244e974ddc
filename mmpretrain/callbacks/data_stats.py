"""Log the data pipeline's skipped-sample counters (by reason) as training metrics, and report
them at the end of every epoch."""

from __future__ import annotations

import logging

from lightning.pytorch import Callback, LightningModule, Trainer

log = logging.getLogger(__name__)


class DataStatsLogger(Callback):
    """Reads `trainer.datamodule.skip_counts` (reason -> cumulative count over all workers of
    this rank) and logs `data/skipped_<reason>` and `data/skipped_total` for this rank."""

    def __init__(self, every_n_steps: int = 10) -> None:
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if trainer.global_step % self.every_n_steps != 0:
            return
        counts = dict(getattr(trainer.datamodule, "skip_counts", None) or {})
        if not counts:
            return
        counts = {f"data/skipped_{reason}": float(n) for reason, n in sorted(counts.items())}
        counts["data/skipped_total"] = sum(counts.values())
        # No sync_dist: a reason seen on one rank only would make ranks log different keys and
        # deadlock the reduction, so each rank reports its own counts.
        pl_module.log_dict(counts, on_step=True, on_epoch=False, sync_dist=False)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """End-of-epoch report of this rank's skips (every rank logs its own line)."""
        counts = dict(getattr(trainer.datamodule, "skip_counts", None) or {})
        summary = ", ".join(f"{reason}={n}" for reason, n in sorted(counts.items())) or "none"
        log.info("epoch %d rank %d: skipped samples by reason: %s (total %d)", trainer.current_epoch,
                 trainer.global_rank, summary, sum(counts.values()))
