"""A short model summary: parameter counts per top-level child, FLOPs only when measured.

Lightning's summary prints a FLOPs column that reads 0 unless the module sets an example
input; this one states real counts and omits what was not computed.
"""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.utilities.model_summary import get_human_readable_count
from lightning.pytorch.utilities.rank_zero import rank_zero_info


def parameter_counts(module) -> tuple[int, int]:
    """(total, trainable) parameter counts, each shared tensor counted once."""
    seen: dict[int, bool] = {}
    for parameter in module.parameters():
        seen.setdefault(id(parameter), parameter.requires_grad)
        seen[id(parameter)] = seen[id(parameter)] or parameter.requires_grad
    sizes = {id(p): p.numel() for p in module.parameters()}
    return sum(sizes.values()), sum(sizes[i] for i, trainable in seen.items() if trainable)


def summary_lines(pl_module: LightningModule, total_flops: int = 0) -> list[str]:
    total, trainable = parameter_counts(pl_module)
    frozen = f", {get_human_readable_count(total - trainable)} frozen" if total != trainable else ""
    lines = [f"model {type(pl_module).__name__}: {get_human_readable_count(total)} parameters"
             f" ({get_human_readable_count(trainable)} trainable{frozen}), "
             f"{total * 4 / 1e6:.1f} MB in fp32"]
    for name, child in pl_module.named_children():
        child_total, child_trainable = parameter_counts(child)
        if child_total == 0:
            continue
        note = "" if child_trainable == child_total else f" ({get_human_readable_count(child_trainable)} trainable)"
        lines.append(f"  {name:16s} {type(child).__name__:24s} {get_human_readable_count(child_total):>8s}{note}")
    if total_flops:
        lines.append(f"  forward FLOPs on the example input: {get_human_readable_count(total_flops)}")
    return lines


class ParameterSummary(ModelSummary):
    """Replaces Lightning's default summary (same place in the run: the start of fit)."""

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._max_depth or not trainer.is_global_zero:
            return
        flops = 0
        if getattr(pl_module, "example_input_array", None) is not None:
            flops = self._summary(trainer, pl_module).total_flops
        rank_zero_info("\n".join(summary_lines(pl_module, flops)))
