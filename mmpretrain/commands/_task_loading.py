"""Build a task from the same config stack as `mmpretrain fit` and load a checkpoint into it
(tensors only: `torch.load(weights_only=True)`)."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import LightningModule

from mmpretrain.cli import run_lightning_cli


def load_task(config_args: list[str], checkpoint: str | None) -> LightningModule:
    """`config_args`: `-c a.yaml -c b.yaml --model.x=y ...` as for `mmpretrain fit`."""
    cli = run_lightning_cli([*config_args, "--trainer.logger=false"], run=False)
    task = cli.model
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint {checkpoint!r} does not exist")
        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as exn:  # noqa: BLE001 - any unreadable file gets the same clear message
            raise ValueError(f"cannot read checkpoint {checkpoint!r} with weights_only=True: {exn}") from exn
        state_dict = state.get("state_dict", state) if isinstance(state, dict) else None
        if not isinstance(state_dict, dict):
            raise ValueError(f"checkpoint {checkpoint!r} holds no state_dict")
        missing, unexpected = task.load_state_dict(state_dict, strict=False)
        if missing or unexpected:
            raise ValueError(f"checkpoint {checkpoint!r} does not match the configured model: "
                             f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    task.eval()
    return task


def split_config_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(config stack `-c FILE` / `--config FILE` / `--model.*` / `--data.*` / `--trainer.*`, the rest)."""
    config, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-c", "--config") and i + 1 < len(argv):
            config += argv[i:i + 2]
            i += 2
            continue
        if arg.startswith(("--model.", "--data.", "--trainer.", "--config=")):
            if "=" not in arg and i + 1 < len(argv):
                config += argv[i:i + 2]
                i += 2
                continue
            config.append(arg)
        else:
            rest.append(arg)
        i += 1
    return config, rest
