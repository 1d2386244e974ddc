"""One line when fit starts saying where the run goes and how it runs, and one line at the end
summarising the samples the data pipeline skipped."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_info


def attention_backends(module) -> list[str]:
    """Resolved attention backends of the model's blocks (nn/attention.py), deduplicated."""
    found: list[str] = []
    for child in module.modules():
        for attribute in ("attn_backend", "backend"):
            value = getattr(child, attribute, None)
            if isinstance(value, str) and value in ("xformers", "sdpa", "math") and value not in found:
                found.append(value)
    return found


def data_description(datamodule) -> str:
    if datamodule is None:
        return "data: none"
    parts = [type(datamodule).__name__]
    mode = getattr(datamodule, "mode", None)
    if isinstance(mode, str):
        parts.append(f"mode {mode}")
    spec = getattr(datamodule, "_train_spec", None)
    shards = getattr(spec, "shards", None)
    if shards is not None:
        total = getattr(spec, "total_size", None)
        parts.append(f"{len(shards)} train shards" + (f" ({total} samples)" if total else ""))
    return "data " + ", ".join(parts)


def start_line(trainer: Trainer, pl_module: LightningModule) -> str:
    accelerator = type(trainer.accelerator).__name__.removesuffix("Accelerator").lower()
    devices = f"{trainer.num_devices} {accelerator}" + (f" x {trainer.num_nodes} nodes" if trainer.num_nodes > 1 else "")
    strategy = type(trainer.strategy).__name__.removesuffix("Strategy")
    attention = "/".join(attention_backends(pl_module)) or "none"
    return (f"run {trainer.default_root_dir} | devices {devices} ({strategy}) | precision {trainer.precision}"
            f" | attention {attention} | {data_description(trainer.datamodule)}")


class RunBanner(Callback):
    """on_fit_start runs after the datamodule's setup(), so the shard list is known."""

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        rank_zero_info(start_line(trainer, pl_module))

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        counts = dict(getattr(trainer.datamodule, "skip_counts", None) or {})
        summary = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
        rank_zero_info(f"skipped samples (rank 0): {sum(counts.values())}" + (f" ({summary})" if summary else ""))
