"""Configuration mistakes end the CLI with one or two readable lines and exit code 2.

A mis-typed key, a wrong type, an out-of-range value or a missing file is the user's input,
not a bug: the message names the key or file and what was expected, without a traceback.
`--debug` (or MMPRETRAIN_DEBUG=1) shows the full traceback instead. Anything else — a bug —
keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import traceback
from collections.abc import Iterator
from typing import TextIO

import jsonargparse

from mmpretrain.console.parser_messages import explain_parser_message
from mmpretrain.extras import EXTRA_OF_MODULE, MissingExtra

DEBUG_FLAG = "--debug"
DEBUG_ENV = "MMPRETRAIN_DEBUG"
EXIT_CONFIG_ERROR = 2
_UNION_FAILURE = "Does not validate against any of the Union subtypes"
# frames in which a ValueError/TypeError comes from the user's configuration: building the
# configured classes, and the datamodule's setup (shard paths, sizes)
_CONFIG_FRAMES = ("instantiate_classes", "_call_setup_hook", "_parse_ckpt_path")


class ParserFailure(argparse.ArgumentError):
    """jsonargparse refused the command line or a config file."""

    def __init__(self, message: str, parser) -> None:
        super().__init__(None, message)
        self.parser = parser

    def __str__(self) -> str:
        return self.message


def split_debug_flag(args: list[str]) -> tuple[list[str], bool]:
    """(args without --debug, whether the traceback was asked for)."""
    debug = DEBUG_FLAG in args or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    return [a for a in args if a != DEBUG_FLAG], debug


def is_dead_end(exn: BaseException) -> bool:
    """A run that cannot start for a reason its message fully explains (a missing prerequisite,
    a checkpoint of another architecture); their modules are loaded by then, so the imports
    cost nothing."""
    if not isinstance(exn, (FileNotFoundError, ValueError)):
        return False
    from mmpretrain.models.state_dict_check import CheckpointMismatchError
    from mmpretrain.prerequisites import PrerequisiteError

    return isinstance(exn, (PrerequisiteError, CheckpointMismatchError))


def explain(exn: BaseException) -> str | None:
    """The one-line message for a configuration error, or None when `exn` is not one."""
    if isinstance(exn, ParserFailure):
        return explain_parser_message(str(exn), exn.parser)
    if isinstance(exn, MissingExtra) or is_dead_end(exn):
        return str(exn)
    if isinstance(exn, ImportError) and (exn.name or "").split(".", 1)[0] in EXTRA_OF_MODULE:
        module = exn.name.split(".", 1)[0]
        return str(MissingExtra(module, EXTRA_OF_MODULE[module]))
    if isinstance(exn, FileNotFoundError):
        if exn.filename and exn.strerror and not exn.strerror.startswith("No such file"):
            return exn.strerror
        if exn.filename:
            return f"file {exn.filename!r} does not exist"
        return str(exn)
    if isinstance(exn, (ValueError, TypeError)):
        message = str(exn)
        if _UNION_FAILURE in message:
            return _explain_instantiation(message)
        frames = {frame.name for frame in traceback.extract_tb(exn.__traceback__)}
        if frames & set(_CONFIG_FRAMES):
            return message.splitlines()[0] if message else type(exn).__name__
    return None


def _explain_instantiation(message: str) -> str:
    """A constructor's own ValueError, wrapped by jsonargparse into a Union report."""
    class_path = re.search(r"class_path='([^']+)'", message)
    reasons = [line.strip()[2:] for line in message.splitlines()
               if line.strip().startswith("- ") and "Expected a <class 'NoneType'>" not in line]
    reason = reasons[0] if reasons else message.splitlines()[0]
    return f"{class_path.group(1)}: {reason}" if class_path else reason


@contextlib.contextmanager
def readable_errors(debug: bool, stream: TextIO | None = None) -> Iterator[None]:
    """Run the CLI body; a configuration error prints `error: ...` and exits 2."""
    original_error = jsonargparse.ArgumentParser.error

    def raise_instead_of_exit(parser, message: str, ex: Exception | None = None):
        if not parser.exit_on_error:  # a parser whose caller handles its errors
            return original_error(parser, message, ex)
        raise ParserFailure(message, parser) from ex

    jsonargparse.ArgumentParser.error = raise_instead_of_exit
    try:
        yield
    except Exception as exn:  # noqa: BLE001 - classified below; bugs are re-raised
        message = explain(exn)
        if message is None:
            raise
        if debug:
            raise
        out = stream or sys.stderr
        print(f"error: {message}", file=out)
        print(f"(run with {DEBUG_FLAG} or {DEBUG_ENV}=1 for the traceback)", file=out)
        raise SystemExit(EXIT_CONFIG_ERROR) from None
    finally:
        jsonargparse.ArgumentParser.error = original_error
