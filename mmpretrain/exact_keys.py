"""Exact command-line keys: no argparse prefix matching, and a "did you mean" for a near miss.

argparse by default accepts any unique prefix of a flag, so `--trainer.max_step 5` silently
meant `--trainer.max_steps 5`; an ablation typo then runs something else than written. With
prefixes off the typo is an error, and the error names the closest real keys.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterator
from typing import Any, NoReturn

from lightning.pytorch.cli import LightningArgumentParser


def option_strings(parser: argparse.ArgumentParser) -> Iterator[str]:
    """Every `--flag` of `parser` and of its subcommand parsers."""
    for action in parser._actions:
        yield from (s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from option_strings(sub)


def closest_keys(flag: str, known: list[str]) -> list[str]:
    """Known keys that `flag` abbreviates, else the most similar ones."""
    prefixed = sorted(k for k in known if k.startswith(flag) and k != flag)
    return prefixed[:3] or difflib.get_close_matches(flag, known, n=3, cutoff=0.75)


def unknown_flags(message: str) -> list[str]:
    if not message.startswith("unrecognized arguments:"):
        return []
    words = message.split(":", 1)[1].split()
    return [w.split("=", 1)[0] for w in words if w.startswith("--")]


class ExactKeyArgumentParser(LightningArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        parser = getattr(ex, "subcommand_parser", None) or self
        known = sorted(set(option_strings(parser)) | set(option_strings(self)))
        hints = []
        for flag in unknown_flags(message):
            if close := closest_keys(flag, known):
                hints.append(f"{flag} is not a key; did you mean {' or '.join(close)}?")
        super().error(message + ("\n" + "\n".join(hints) if hints else ""), ex)
