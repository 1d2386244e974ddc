"""Build hook: the wheel carries `configs/` and `data_tools/` inside the package.

They become `mmpretrain/_configs` and `mmpretrain/_data_tools`, which `mmpretrain.resources`
finds (`mmpretrain fit -c mmpretrain://exp/clip/quickstart.yaml`, `mmpretrain data TOOL`).
Everything else about the package is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# repository folder -> folder inside the installed package
SHIPPED = {"configs": "_configs", "data_tools": "_data_tools"}
SHIPPED_SUFFIXES = {".yaml", ".yml", ".py", ".json", ".txt", ".md"}


class BuildWithResources(build_py):
    def run(self) -> None:
        super().run()
        for source_name, target_name in SHIPPED.items():
            source = ROOT / source_name
            target = Path(self.build_lib) / "mmpretrain" / target_name
            if not source.is_dir():
                continue
            for path in sorted(source.rglob("*")):
                if path.is_file() and path.suffix in SHIPPED_SUFFIXES and "__pycache__" not in path.parts:
                    destination = target / path.relative_to(source)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, destination)


setup(cmdclass={"build_py": BuildWithResources})
