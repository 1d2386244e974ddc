"""`mmpretrain pseudo-label`: label unlabelled trajectory shards with a trained inverse dynamics model.

    mmpretrain pseudo-label -c configs/trainer/cpu.yaml -c configs/exp/robot/cursor_idm.yaml \
        --ckpt runs/robot/cursor_idm/checkpoints/last.ckpt \
        --input data/robot/cursor/unlabelled --out data/robot/cursor/pseudo \
        [--reference data/robot/cursor/unlabelled_truth]

Every input sample is copied with `actions.npy` = the IDM's most likely actions and json
`label_source: "idm"`, per-step `confidence` (smallest max-probability over the heads; 0 for
a window's last step, whose outcome frame the IDM cannot see) and `idm_checkpoint`. With
`--reference` (the same windows with true actions, matched by key) it measures pseudo-label
accuracy and writes it to `OUT/pseudo_label_metrics.json`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from mmpretrain.commands._task_loading import load_task, split_config_args
from mmpretrain.data.sources.trajectory import TrajectoryDecoder, encode_npy, load_npy
from mmpretrain.data.wds.shard_spec import parse_shard_spec
from mmpretrain.data.wds.skips import SkipCounter, SkipSample
from mmpretrain.data.wds.tar_reader import iter_tar_samples
from mmpretrain.data.wds.writer import ShardWriter, write_json_atomic
from mmpretrain.eval.action import action_metrics

HELP = "label unlabelled trajectory shards with a trained inverse dynamics model"
METRICS_FILENAME = "pseudo_label_metrics.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmpretrain pseudo-label", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="IDM checkpoint (Lightning .ckpt)")
    parser.add_argument("--input", required=True, help="shard spec of the trajectory windows to label")
    parser.add_argument("--out", required=True, help="output directory for the labelled shards")
    parser.add_argument("--reference", help="shard spec of the same windows with true actions")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--min-confidence", type=float, default=0.5,
                        help="also report accuracy over steps at least this confident")
    parser.add_argument("--overwrite", action="store_true")
    return parser


def _raw_samples(spec: str, skips: SkipCounter) -> Iterator[dict]:
    for shard in parse_shard_spec(spec).shards:
        yield from iter_tar_samples(shard.path, skips)


def _batches(spec: str, decoder: TrajectoryDecoder, batch_size: int, skips: SkipCounter) -> Iterator[list]:
    pending: list[tuple[dict, dict]] = []
    for raw in _raw_samples(spec, skips):
        try:
            decoded = decoder(raw)
        except SkipSample as skip:
            skips.add(skip.reason)
            continue
        if pending and decoded["frames"].shape != pending[0][1]["frames"].shape:
            yield pending
            pending = []
        pending.append((raw, decoded))
        if len(pending) == batch_size:
            yield pending
            pending = []
    if pending:
        yield pending


def _reference_actions(spec: str) -> dict[str, np.ndarray]:
    skips, actions = SkipCounter(), {}
    for raw in _raw_samples(spec, skips):
        if "actions.npy" in raw:
            actions[raw["__key__"]] = load_npy(raw["actions.npy"], f"{raw['__key__']}.actions.npy")
    if not actions:
        raise ValueError(f"--reference {spec!r} holds no samples with actions.npy")
    return actions


def main(argv: list[str]) -> int:
    config_args, rest = split_config_args(argv)
    args = build_parser().parse_args(rest)
    task = load_task(config_args, args.ckpt)
    model = task.model
    if not hasattr(model, "predict_actions"):
        raise ValueError(f"the configured model {type(model).__name__} cannot predict actions")
    decoder = TrajectoryDecoder(model.action_space, window=None, require_actions=False)
    reference = _reference_actions(args.reference) if args.reference else None
    skips, preds, trues, confs = SkipCounter(), [], [], []
    with ShardWriter(args.out, args.shard_size, overwrite=args.overwrite) as writer, torch.no_grad():
        for batch in _batches(args.input, decoder, args.batch_size, skips):
            frames = torch.stack([decoded["frames"] for _, decoded in batch])
            actions_BTA, confidence_BT = model.predict_actions(frames)
            for (raw, decoded), actions, confidence in zip(batch, actions_BTA.numpy(), confidence_BT.numpy()):
                meta = {**decoded["json"], "label_source": "idm", "confidence": confidence.round(4).tolist(),
                        "idm_checkpoint": str(args.ckpt)}
                meta.pop("crop_start", None)
                sample = {k: v for k, v in raw.items() if not k.startswith("__") and k not in ("json", "actions.npy")}
                writer.write({"__key__": raw["__key__"], **sample, "json": meta,
                              "actions.npy": encode_npy(actions.astype(np.float32))})
                if reference is not None and raw["__key__"] in reference:
                    preds.append(actions)
                    trues.append(reference[raw["__key__"]])
                    confs.append(confidence)
        spec = writer.close()
    print(f"labelled {writer.num_samples} windows -> {spec}; skipped {skips.to_dict()}")
    if reference is not None:
        if not preds:
            raise ValueError(f"no key of --input {args.input!r} occurs in --reference {args.reference!r}")
        report = pseudo_label_report(model.action_space, np.stack(preds), np.stack(trues), np.stack(confs),
                                     args.min_confidence)
        write_json_atomic(Path(args.out) / METRICS_FILENAME, report)
        print(json.dumps(report, indent=2, sort_keys=True))
    return 0


def pseudo_label_report(action_space, pred_NTA: np.ndarray, true_NTA: np.ndarray, conf_NT: np.ndarray,
                        min_confidence: float) -> dict:
    """Accuracy over labelled steps (confidence > 0) and over confident steps, plus coverage."""
    pred, true = torch.from_numpy(pred_NTA).float(), torch.from_numpy(true_NTA).float()
    labelled = torch.from_numpy(conf_NT > 0)
    confident = torch.from_numpy(conf_NT >= min_confidence)
    report = {f"all/{k}": v for k, v in action_metrics(action_space, pred[labelled], true[labelled]).items()}
    report.update({f"confident/{k}": v for k, v in action_metrics(action_space, pred[confident], true[confident]).items()})
    report["confident_fraction"] = float(confident.float().mean())
    report["min_confidence"] = min_confidence
    return report
