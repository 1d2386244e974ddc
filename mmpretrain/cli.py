"""`mmpretrain` console script: a light dispatcher in front of LightningCLI and the extra commands.

`mmpretrain fit|validate|test|predict ...` runs LightningCLI (`mmpretrain/lightning_cli.py`);
`mmpretrain <command> ...` runs `mmpretrain/commands/<command>.py`. Nothing heavy is imported
here: `mmpretrain --help` lists the commands without importing torch, and each command imports
only what it uses, so a command starts in about the time its own imports take.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any

from mmpretrain.commands import available_commands, command_help

LIGHTNING_SUBCOMMANDS = {
    "fit": "train a model (a config stack: -c trainer.yaml -c exp.yaml [-c ablation.yaml])",
    "validate": "evaluate a checkpoint on the validation set (--ckpt_path) and write metrics.json",
    "test": "evaluate a checkpoint on the test set (--ckpt_path) and write metrics.json",
    "predict": "run the model's predict step over the predict set",
}

# the LightningCLI side, imported on first use so that `import mmpretrain.cli` stays light
_LAZY = ("MMPretrainCLI", "run_lightning_cli", "format_evaluation")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from mmpretrain import lightning_cli

        return getattr(lightning_cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def usage() -> str:
    lines = ["usage: mmpretrain COMMAND [options]   (mmpretrain COMMAND --help for a command's options)",
             "", "training and evaluation (LightningCLI):"]
    lines += [f"  {name:14s} {text}" for name, text in LIGHTNING_SUBCOMMANDS.items()]
    lines += ["", "extra commands:", command_help(), "",
              "A run is a stack of YAML files, later ones overriding earlier ones:",
              "  mmpretrain fit -c configs/trainer/cpu.yaml -c configs/exp/clip/quickstart.yaml",
              "See docs/cli.md."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if args else 2)
    from mmpretrain.console.config_errors import readable_errors, split_debug_flag
    from mmpretrain.console.quiet import silence_third_party_tips
    from mmpretrain.resources import resolve_packaged_configs

    args, debug = split_debug_flag(args)
    silence_third_party_tips()
    with readable_errors(debug):
        args = resolve_packaged_configs(args)
        if argv is None:  # LightningCLI reads sys.argv itself
            sys.argv[1:] = args
        dispatch(args, None if argv is None else args)


def dispatch(args: list[str], argv: list[str] | None) -> None:
    extra = available_commands()
    if args[0] in extra:
        sys.exit(run_command_by_name(args[0], args[1:]))
    if not args[0].startswith("-") and args[0] not in LIGHTNING_SUBCOMMANDS:
        close = difflib.get_close_matches(args[0], [*LIGHTNING_SUBCOMMANDS, *extra], n=1)
        hint = f"; did you mean {close[0]}?" if close else " (mmpretrain --help lists them)"
        print(f"mmpretrain: unknown command {args[0]!r}{hint}", file=sys.stderr)
        sys.exit(2)
    from mmpretrain.lightning_cli import run_lightning_cli

    run_lightning_cli(argv)  # None: LightningCLI reads sys.argv itself


def run_command_by_name(name: str, argv: list[str]) -> int:
    from mmpretrain.commands import run_command

    return run_command(name, argv)


if __name__ == "__main__":
    main()
