"""Missing prerequisites of a run, reported as what to run first (one or two lines).

A config that starts from another run's checkpoint (`init_from: runs/X/checkpoints/last.ckpt`)
fails before training if that file is missing; the message names the shipped config whose
`trainer.default_root_dir` is `runs/X`, i.e. the command that makes the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def configs_root() -> Path:
    """The shipped `configs/` folder (of the clone this package runs from, else the cwd's)."""
    beside_package = Path(__file__).resolve().parents[1] / "configs"
    return beside_package if beside_package.is_dir() else Path.cwd() / "configs"


class PrerequisiteError(FileNotFoundError):
    """A file the run needs does not exist; the message says which command makes it."""


def producing_configs(run_dir: Path, configs: Path) -> list[Path]:
    """Shipped configs whose `default_root_dir` is `run_dir` (a plain text match: configs are
    small and this runs once, before training)."""
    pattern = re.compile(rf"^\s*default_root_dir:\s*['\"]?{re.escape(run_dir.as_posix())}/?['\"]?\s*$", re.M)
    return sorted(p for p in configs.rglob("*.yaml") if pattern.search(p.read_text(errors="replace")))


def missing_checkpoint_message(source: str, configs: Path) -> str:
    parts = Path(source).parts
    run_dir = Path(*parts[:parts.index("checkpoints")]) if "checkpoints" in parts[1:] else None
    producers = producing_configs(run_dir, configs) if run_dir is not None else []
    message = f"starting checkpoint {source} does not exist"
    if producers:
        config = producers[0].relative_to(configs.parent).as_posix()
        message += (f"; run `mmpretrain fit -c configs/trainer/cpu.yaml -c {config}` first "
                    f"(it writes {run_dir}/checkpoints/last.ckpt)")
    return message


def check_init_from(model: Any) -> None:
    """Raise `PrerequisiteError` when the model's `init_from` is a local path that is missing."""
    source = getattr(model, "init_from", None)
    if not isinstance(source, str) or ":" in source.split("/")[0] or Path(source).expanduser().exists():
        return  # None, a scheme such as hf-hub:/local-dir:, or present
    raise PrerequisiteError(missing_checkpoint_message(source, configs_root()))
