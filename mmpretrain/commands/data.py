"""`mmpretrain data TOOL ...` (also the `mmpretrain-data` console script): the data tools.

The tools are the scripts of `data_tools/` (shipped in a wheel as `mmpretrain/_data_tools`),
so `mmpretrain data make_synthetic image-text --out DIR` is `python data_tools/make_synthetic.py
image-text --out DIR` in a clone.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from mmpretrain.console.parser_messages import closest
from mmpretrain.resources import data_tools_dir

HELP = "run a data tool: mmpretrain data TOOL [ARGS...] (mmpretrain data --help lists them)"


def available_tools() -> dict[str, Path]:
    return {path.stem: path for path in sorted(data_tools_dir().glob("*.py")) if not path.stem.startswith("_")}


def _first_doc_line(path: Path) -> str:
    text = path.read_text(encoding="utf-8").lstrip()
    if text.startswith(('"""', "'''")):
        return text[3:].strip().splitlines()[0].rstrip('."') if text[3:].strip() else ""
    return ""


def usage() -> str:
    lines = ["usage: mmpretrain data TOOL [ARGS...]   (TOOL --help for its options)", "", "tools:"]
    lines += [f"  {name:22s} {_first_doc_line(path)}" for name, path in available_tools().items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    tools = available_tools()
    name = argv[0].replace("-", "_").removesuffix(".py")
    if name not in tools:
        match = closest(name, list(tools))
        hint = f"; did you mean {match!r}?" if match else f" (tools: {', '.join(tools)})"
        print(f"error: unknown data tool {argv[0]!r}{hint}", file=sys.stderr)
        return 2
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [f"mmpretrain data {name}", *argv[1:]]
    try:
        runpy.run_path(str(tools[name]), run_name="__main__")
    except SystemExit as exn:
        if exn.code is None or isinstance(exn.code, int):
            return int(exn.code or 0)
        print(exn.code, file=sys.stderr)
        return 1
    finally:
        # the tools put their repository root on sys.path for clones; undo that here
        sys.argv, sys.path[:] = saved_argv, saved_path
    return 0


def console_main() -> None:
    sys.exit(main(sys.argv[1:]))
