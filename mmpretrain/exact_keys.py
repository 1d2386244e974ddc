"""Exact command-line keys: no argparse prefix matching (the "did you mean" line for a near
miss is written by `mmpretrain.console.parser_messages`, which uses `closest_keys`).

argparse by default accepts any unique prefix of a flag, so `--trainer.max_step 5` silently
meant `--trainer.max_steps 5`; an ablation typo then runs something else than written. With
prefixes off the typo is an error, and the error names the closest real keys.
"""

from __future__ import annotations

import difflib
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser


def closest_keys(flag: str, known: list[str]) -> list[str]:
    """Known keys that `flag` abbreviates, else the most similar ones."""
    prefixed = sorted(k for k in known if k.startswith(flag) and k != flag)
    return prefixed[:3] or difflib.get_close_matches(flag, known, n=3, cutoff=0.75)


class ExactKeyArgumentParser(LightningArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
