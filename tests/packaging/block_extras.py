"""Run a Python entry point as if only the core requirements were installed.

    python tests/packaging/block_extras.py av,gymnasium -m mmpretrain.cli --help

A meta-path finder refuses the listed top-level modules, as a machine without them would.
"""

from __future__ import annotations

import runpy
import sys


class BlockModules:
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname.split(".", 1)[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def main() -> None:
    blocked = set(sys.argv[1].split(","))
    for name in list(sys.modules):
        if name.split(".", 1)[0] in blocked:
            del sys.modules[name]
    sys.meta_path.insert(0, BlockModules(blocked))
    if sys.argv[2] == "-m":
        sys.argv = [sys.argv[3], *sys.argv[4:]]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[2:]
        runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
