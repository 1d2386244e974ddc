"""Optional dependencies, grouped into the extras of `pyproject.toml`.

Core (`pip install mmpretrain`) covers image-text (CLIP, SigLIP, CoCa), CABS, continual and
interleaved pretraining. Other families import their libraries through `require`, so a
missing library becomes one line naming the extra to install instead of a deep traceback:

    video = require("av", "video")
"""

from __future__ import annotations

import importlib
from types import ModuleType

# module -> extra that installs it (the extras of pyproject.toml's [project.optional-dependencies])
EXTRA_OF_MODULE: dict[str, str] = {
    "av": "video",
    "gymnasium": "robot",
    "ale_py": "robot",
    "pygame": "robot",
    "xformers": "gpu",
    "s3fs": "s3",
    "gcsfs": "gcs",
    "aiohttp": "http",
    "fsspec": "s3",
    "wandb": "wandb",
    "mlflow": "mlflow",
}


class MissingExtra(ImportError):
    """An optional library is not installed; the message names the extra that installs it."""

    def __init__(self, module: str, extra: str, feature: str | None = None) -> None:
        self.module, self.extra = module, extra
        needs = f"{feature} needs" if feature else "this needs"
        super().__init__(f"{needs} the optional package {module!r}: "
                         f"pip install 'mmpretrain[{extra}]'", name=module)


def install_hint(extra: str) -> str:
    return f"pip install 'mmpretrain[{extra}]'"


def require(module: str, extra: str | None = None, feature: str | None = None) -> ModuleType:
    """Import `module` or raise MissingExtra naming the extra (default: EXTRA_OF_MODULE)."""
    top_level = module.split(".", 1)[0]
    extra = extra or EXTRA_OF_MODULE.get(top_level)
    if extra is None:
        raise KeyError(f"{module!r} is not an optional dependency (known: {sorted(EXTRA_OF_MODULE)})")
    try:
        return importlib.import_module(module)
    except ImportError as exn:
        missing = getattr(exn, "name", None) or top_level
        if missing.split(".", 1)[0] != top_level:
            raise  # the library is installed but one of its own dependencies is broken: show that
        raise MissingExtra(top_level, extra, feature) from exn


def is_available(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
