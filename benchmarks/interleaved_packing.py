"""Packed vs padded interleaved batches: non-pad token fraction and training tokens/s.

    python benchmarks/interleaved_packing.py -c configs/trainer/cpu.yaml -c configs/exp/interleaved/quickstart.yaml

The model, the data and the documents per batch come from the given config stack (any extra
`--key=value` overrides are passed on). The same documents are decoded once, then batched
both ways: `packed` (first-fit-decreasing into rows of `sequence_length`) and `padded` (one
document per row). Each trial trains a few steps (forward, backward, AdamW) on its batches,
starting from the same weights; trials alternate A B / B A over rounds so machine load drifts
hit both alike. Tokens/s counts document tokens only (what the model learns from).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import interleave, paired_ratio, summarize  # noqa: E402
from mmpretrain.cli import run_lightning_cli  # noqa: E402
from mmpretrain.data.packing import InterleavedCollator, non_pad_fraction  # noqa: E402
from mmpretrain.data.wds.shard_spec import parse_shard_spec  # noqa: E402
from mmpretrain.data.wds.skips import SkipCounter, SkipSample  # noqa: E402
from mmpretrain.data.wds.tar_reader import iter_tar_samples  # noqa: E402


def load_documents(datamodule, count: int) -> list:
    """The first `count` decodable documents of the train shards (eval transform, no crops)."""
    docs, skips = [], SkipCounter()
    for shard in parse_shard_spec(datamodule.train_shards).shards:
        for raw in iter_tar_samples(shard.path, skips):
            try:
                docs.append(datamodule.val_decoder(raw))
            except SkipSample:
                continue
            if len(docs) == count:
                return docs
    return docs


def make_trial(task, batches: list[dict], steps: int):
    initial = copy.deepcopy(task.state_dict())

    def trial() -> dict[str, float]:
        task.load_state_dict(initial)
        optimizer = torch.optim.AdamW(task.parameters(), lr=1e-3)
        tokens = 0
        start = time.perf_counter()
        for step in range(steps):
            batch = batches[step % len(batches)]
            optimizer.zero_grad(set_to_none=True)
            task.losses(batch)["loss"].backward()
            optimizer.step()
            tokens += int((batch["segment_ids"] > 0).sum())
        elapsed = time.perf_counter() - start
        return {"tokens_per_sec": tokens / elapsed, "step_s": elapsed / steps}

    return trial


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=4, help="distinct batches of documents (default: 4)")
    parser.add_argument("--steps", type=int, default=8, help="training steps per trial (default: 8)")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds (default: 3)")
    args, config_args = parser.parse_known_args(argv)
    cli = run_lightning_cli(config_args, run=False)
    task, datamodule = cli.model, cli.datamodule
    task.train()
    docs = load_documents(datamodule, args.batches * datamodule.batch_size)
    groups = [docs[i:i + datamodule.batch_size] for i in range(0, len(docs), datamodule.batch_size)]
    collators = {mode: InterleavedCollator(datamodule.sequence_length, mode, datamodule.tokenizer.sot_token_id,
                                           datamodule.train_decoder.image_token_id, datamodule.visual_tokens)
                 for mode in ("packed", "padded")}
    batches = {mode: [collate(group) for group in groups] for mode, collate in collators.items()}
    for mode, mode_batches in batches.items():
        rows = [b["tokens"].shape[0] for b in mode_batches]
        fraction = statistics.mean(non_pad_fraction(b["segment_ids"]) for b in mode_batches)
        print(f"{mode}: {len(docs)} documents in {len(mode_batches)} batches of {datamodule.batch_size}, "
              f"rows per batch {statistics.mean(rows):.2f} x {datamodule.sequence_length} tokens, "
              f"non-pad fraction {fraction:.3f}")
    torch.set_num_threads(1)
    results = interleave({mode: make_trial(task, mode_batches, args.steps)
                          for mode, mode_batches in batches.items()}, args.rounds)
    for mode, runs in results.items():
        print(f"{mode}: tokens/s {summarize([r['tokens_per_sec'] for r in runs])['median']:.1f} (median), "
              f"step {summarize([r['step_s'] for r in runs])['median']:.3f} s")
    ratio = paired_ratio([r["tokens_per_sec"] for r in results["packed"]],
                         [r["tokens_per_sec"] for r in results["padded"]])
    print(f"packed / padded tokens/s: {ratio['median_of_round_ratios']:.2f}x (median of per-round ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
