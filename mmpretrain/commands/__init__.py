"""Extra `mmpretrain` subcommands beside Lightning's fit/validate/test/predict.

Each module in this package that defines `main(argv: list[str]) -> int | None` and a one-line
`HELP` string becomes `mmpretrain <module-name-with-dashes> ...`. Discovery is by module
name, so adding a command never edits the CLI.
"""

from __future__ import annotations

import importlib
import pkgutil


def available_commands() -> dict[str, str]:
    """Command name -> module path, for every command module in this package."""
    commands = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            commands[info.name.replace("_", "-")] = f"{__name__}.{info.name}"
    return commands


def run_command(name: str, argv: list[str]) -> int:
    module = importlib.import_module(available_commands()[name])
    result = module.main(argv)
    return int(result or 0)


def command_help() -> str:
    lines = []
    for name, path in sorted(available_commands().items()):
        module = importlib.import_module(path)
        lines.append(f"  {name:12s} {getattr(module, 'HELP', '')}")
    return "\n".join(lines)
