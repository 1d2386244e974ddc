"""Extra `mmpretrain` subcommands beside Lightning's fit/validate/test/predict.

Each module in this package that defines `main(argv: list[str]) -> int | None` and a one-line
`HELP` string becomes `mmpretrain <module-name-with-dashes> ...`. Discovery is by module
name, so adding a command never edits the CLI.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path


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


def command_summary(module_name: str) -> str:
    """A command module's `HELP` string, read from its source: listing the commands must not
    import them (each pulls in torch and its own optional dependencies)."""
    source = (Path(__path__[0]) / f"{module_name.rsplit('.', 1)[-1]}.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "HELP" for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    return ""


def command_help() -> str:
    return "\n".join(f"  {name:14s} {command_summary(path)}"
                     for name, path in sorted(available_commands().items()))
