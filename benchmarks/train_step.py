"""Suite `train_step`: samples/s of full training steps (forward, loss, backward, AdamW step,
LR schedule), mmpretrain's Lightning loop (`ContrastiveTask`) vs open_clip's
`open_clip_train.train.train_one_epoch`, same model config, batch, optimizer settings.

Both consume the same pre-built in-memory batches, so data loading is excluded (see the loader
suite). Every trial runs in a fresh subprocess (clean allocator, honest peak memory); trials
alternate between the codebases. Per trial: one step under FlopCounterMode (model FLOPs), a
warm-up, then the timed steps.

    python benchmarks/train_step.py --trial mmpretrain --model tiny --batch-size 128 --device cpu
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.common import (MMPRETRAIN, OPEN_CLIP, column, interleave, paired_ratio,  # noqa: E402
                               print_table, summarize)

# Dense bf16 tensor-core peaks (FLOP/s) for MFU; first substring match of the device name wins.
PEAK_BF16_FLOPS = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("GH200", 989e12),
                   ("A100", 312e12), ("L40S", 362e12), ("A10G", 70e12), ("L4", 121e12))
OPTIMIZER = {"lr": 5e-4, "betas": (0.9, 0.98), "eps": 1e-6, "weight_decay": 0.2}
WARMUP_LR_STEPS = 10


@dataclass(frozen=True)
class StepCase:
    name: str
    model: str
    batch_size: int
    device: str
    bf16: bool
    warmup_steps: int
    measure_steps: int
    # mmpretrain options (open_clip's trainer has no switch for these)
    fused_adamw: bool = False
    channels_last: bool = False


CPU_CASES = [StepCase("tiny ViT, CPU fp32", "tiny", 16, "cpu", False, 1, 3, fused_adamw=True)]
GPU_CASES = [StepCase("ViT-B/32, CUDA bf16", "ViT-B-32", 256, "cuda", True, 5, 20, True, True),
             StepCase("ViT-B/16, CUDA bf16", "ViT-B-16", 128, "cuda", True, 5, 20, True, True)]


# ---- shared inputs ---------------------------------------------------------------------------
def make_batches(model_name: str, batch_size: int, count: int = 2, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    from mmpretrain.models import get_model_config

    cfg = get_model_config(model_name)
    size, context = cfg["vision_cfg"]["image_size"], cfg["text_cfg"]["context_length"]
    vocab = cfg["text_cfg"]["vocab_size"]
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        images = torch.randn(batch_size, 3, size, size, generator=generator)
        tokens = torch.zeros(batch_size, context, dtype=torch.int64)
        lengths = torch.randint(3, context + 1, (batch_size,), generator=generator)
        for row, length in enumerate(lengths.tolist()):
            tokens[row, 0] = vocab - 2  # <start_of_text>
            tokens[row, 1:length - 1] = torch.randint(1, vocab - 2, (length - 2,), generator=generator)
            tokens[row, length - 1] = vocab - 1  # <end_of_text>: the argmax the text towers pool at
        batches.append((images, tokens))
    return batches


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _cpu_seconds() -> float:
    """User + system CPU time of this process: on a shared machine it is far less affected
    than wall time by other jobs taking the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _count_flops(step_fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step_fn()
    return float(counter.get_total_flops())


# ---- mmpretrain: the Lightning loop over ContrastiveTask ---------------------------------------
def mmpretrain_trial(case: StepCase, batches: list) -> dict[str, Any]:
    from lightning.pytorch import Callback, Trainer
    from torch.utils.data import DataLoader

    from mmpretrain.callbacks import ChannelsLast
    from mmpretrain.losses import ClipLoss
    from mmpretrain.models import create_clip
    from mmpretrain.tasks import ContrastiveTask, WarmupCosineLR

    class StepTimer(Callback):
        def __init__(self) -> None:
            self.start = self.end = self.cpu_start = self.cpu_end = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == case.warmup_steps:
                _sync(case.device)
                if case.device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                self.start, self.cpu_start = time.perf_counter(), _cpu_seconds()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == case.warmup_steps + case.measure_steps - 1:
                _sync(case.device)
                self.end, self.cpu_end = time.perf_counter(), _cpu_seconds()

    rss_before = _rss_mib()
    model = create_clip(case.model)
    flops = _flops_of(model, ClipLoss(), batches[0], case)
    fused = {"fused": True} if case.fused_adamw else {}
    task = ContrastiveTask(model, ClipLoss(),
                           optimizer=functools.partial(torch.optim.AdamW, **OPTIMIZER, **fused),
                           lr_scheduler=functools.partial(WarmupCosineLR, warmup_steps=WARMUP_LR_STEPS))
    timer = StepTimer()
    callbacks = [timer] + ([ChannelsLast()] if case.channels_last else [])
    steps = case.warmup_steps + case.measure_steps
    data = [{"image": batches[i % len(batches)][0], "text": batches[i % len(batches)][1]} for i in range(steps)]
    trainer = Trainer(accelerator=case.device, devices=1, precision="bf16-mixed" if case.bf16 else "32-true",
                      max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=100,
                      callbacks=callbacks)
    trainer.fit(task, train_dataloaders=DataLoader(data, batch_size=None))
    return _result(case, timer.end - timer.start, timer.cpu_end - timer.cpu_start, flops, rss_before)


def _flops_of(model, loss, batch, case: StepCase, counted_rows: int = 2) -> float:
    """FLOPs of one forward + loss + backward, counted on `counted_rows` samples and scaled to
    the batch (exact for the towers; the loss's B x B logits are a negligible remainder)."""
    model = model.to(case.device)
    images, tokens = (t[:counted_rows].to(case.device) for t in batch)

    def step() -> None:
        with torch.autocast(case.device, dtype=torch.bfloat16, enabled=case.bf16):
            out = model(images, tokens)
            value = loss(out["image_features"], out["text_features"], out["logit_scale"])
        value.backward()

    flops = _count_flops(step) * case.batch_size / counted_rows
    model.zero_grad(set_to_none=True)
    return flops


def _result(case: StepCase, elapsed: float, cpu_s: float, flops: float, rss_before: float) -> dict[str, Any]:
    samples_per_s = case.batch_size * case.measure_steps / elapsed
    result: dict[str, Any] = {"samples_per_s": samples_per_s, "step_s": elapsed / case.measure_steps,
                              "cpu_s_per_step": cpu_s / case.measure_steps,
                              "flops_per_step": flops, "achieved_tflops": flops * case.measure_steps / elapsed / 1e12}
    if case.device == "cuda":
        result["peak_mem_mib"] = torch.cuda.max_memory_allocated() / 2**20
        name = torch.cuda.get_device_name(0)
        peak = next((p for key, p in PEAK_BF16_FLOPS if key in name), None)
        result["mfu"] = result["achieved_tflops"] * 1e12 / peak if peak and case.bf16 else None
    else:
        result["peak_rss_growth_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before
    return result


# ---- open_clip: train_one_epoch ---------------------------------------------------------------
class _InMemoryLoader:
    def __init__(self, batches: list, num_batches: int, batch_size: int) -> None:
        self.batches, self.num_batches, self.num_samples = batches, num_batches, num_batches * batch_size

    def __iter__(self):
        return (self.batches[i % len(self.batches)] for i in range(self.num_batches))


def open_clip_trial(case: StepCase, batches: list) -> dict[str, Any]:
    """open_clip_train's own step (train_one_epoch), optimizer groups and schedule as its main.py."""
    from open_clip.loss import ClipLoss as OpenClipLoss
    from open_clip.model import CLIP as OpenClipCLIP
    from open_clip_train.data import DataInfo
    from open_clip_train.params import parse_args
    from open_clip_train.scheduler import cosine_lr
    from open_clip_train.train import train_one_epoch

    from mmpretrain.models import get_model_config

    args = parse_args(["--batch-size", str(case.batch_size), "--precision", "amp_bf16" if case.bf16 else "fp32",
                       "--lr", str(OPTIMIZER["lr"]), "--wd", str(OPTIMIZER["weight_decay"]),
                       "--beta1", str(OPTIMIZER["betas"][0]), "--beta2", str(OPTIMIZER["betas"][1]),
                       "--eps", str(OPTIMIZER["eps"]), "--warmup", str(WARMUP_LR_STEPS)])
    args.device, args.world_size, args.rank, args.local_rank = case.device, 1, 0, 0
    args.distributed, args.distill, args.wandb = False, False, False
    rss_before = _rss_mib()
    model = OpenClipCLIP(**get_model_config(case.model), output_dict=True).to(case.device)
    loss = OpenClipLoss()
    flops = _flops_of(model, loss, batches[0], case)
    named = list(model.named_parameters())
    exclude = lambda n, p: p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n  # noqa: E731
    optimizer = torch.optim.AdamW(
        [{"params": [p for n, p in named if exclude(n, p) and p.requires_grad], "weight_decay": 0.0},
         {"params": [p for n, p in named if not exclude(n, p) and p.requires_grad], "weight_decay": args.wd}],
        lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps)
    total_steps = case.warmup_steps + case.measure_steps
    scheduler = cosine_lr(optimizer, args.lr, args.warmup, total_steps)
    device_batches = [tuple(t.to(case.device) for t in b) for b in batches]

    def epoch(index: int, num_batches: int) -> None:
        data = {"train": DataInfo(_InMemoryLoader(device_batches, num_batches, case.batch_size))}
        train_one_epoch(model, data, loss, index, optimizer, None, scheduler, None, args)

    epoch(0, case.warmup_steps)
    _sync(case.device)
    if case.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    epoch(1, case.measure_steps)
    _sync(case.device)
    return _result(case, time.perf_counter() - start, _cpu_seconds() - cpu_start, flops, rss_before)


# ---- driver ----------------------------------------------------------------------------------
def run_trial_subprocess(codebase: str, case: StepCase) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--trial", codebase, "--case", json.dumps(asdict(case))]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{codebase} trial failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def run(device: str = "cpu", rounds: int = 3, quick: bool = False, **_: Any) -> dict[str, Any]:
    cases = CPU_CASES + (GPU_CASES if device == "cuda" else [])
    results: dict[str, Any] = {"cases": []}
    rows = []
    for case in cases:
        print(f"  train_step: {case.name} (batch {case.batch_size})", flush=True)
        measured = interleave({codebase: functools.partial(run_trial_subprocess, codebase, case)
                               for codebase in (MMPRETRAIN, OPEN_CLIP)}, rounds)
        entry: dict[str, Any] = {"case": asdict(case)}
        for codebase in (MMPRETRAIN, OPEN_CLIP):
            entry[codebase] = {key: summarize(column(measured[codebase], key))
                               for key in measured[codebase][0] if measured[codebase][0][key] is not None}
        entry["ratio"] = paired_ratio(column(measured[MMPRETRAIN], "samples_per_s"),
                                      column(measured[OPEN_CLIP], "samples_per_s"))
        # open_clip's CPU seconds per step over ours: > 1 means mmpretrain needs less CPU work
        entry["cpu_time_ratio"] = paired_ratio(column(measured[OPEN_CLIP], "cpu_s_per_step"),
                                               column(measured[MMPRETRAIN], "cpu_s_per_step"))
        results["cases"].append(entry)
        memory_key = "peak_mem_mib" if case.device == "cuda" else "peak_rss_growth_mib"
        ours, theirs = entry[MMPRETRAIN], entry[OPEN_CLIP]
        rows.append([case.name, ours["samples_per_s"]["median"], theirs["samples_per_s"]["median"],
                     entry["ratio"]["median_of_round_ratios"], entry["cpu_time_ratio"]["median_of_round_ratios"],
                     ours[memory_key]["median"], theirs[memory_key]["median"],
                     ours.get("mfu", {}).get("median"), theirs.get("mfu", {}).get("median")])
    results["table"] = print_table(
        "train_step: samples/s (median of interleaved rounds); memory = CUDA peak allocated or CPU peak RSS growth (MiB)",
        ["case", MMPRETRAIN, OPEN_CLIP, "ratio", "CPU-time ratio", "mem ours", "mem open_clip", "MFU ours",
         "MFU open_clip"], rows)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trial", choices=(MMPRETRAIN, OPEN_CLIP), required=True)
    parser.add_argument("--case", required=True, help="StepCase as JSON")
    args = parser.parse_args()
    case = StepCase(**json.loads(args.case))
    torch.manual_seed(0)
    batches = make_batches(case.model, case.batch_size)
    trial = mmpretrain_trial if args.trial == MMPRETRAIN else open_clip_trial
    print("RESULT " + json.dumps(trial(case, batches)), flush=True)


if __name__ == "__main__":
    main()
