"""Configs and data tools shipped with the package, found in a wheel and in a clone alike.

A wheel carries `configs/` as `mmpretrain/_configs` and `data_tools/` as `mmpretrain/_data_tools`
(setup.py copies them at build time); a clone or editable install uses the repository folders.
On the command line `mmpretrain://exp/clip/quickstart.yaml` names a packaged config, and a
`-c configs/...` path that does not exist locally falls back to the packaged copy.
"""

from __future__ import annotations

from pathlib import Path

SCHEME = "mmpretrain://"
_PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_DIR = _PACKAGE_DIR.parent
_CONFIG_FLAGS = ("-c", "--config")


def configs_dir() -> Path:
    packaged = _PACKAGE_DIR / "_configs"
    return packaged if packaged.is_dir() else _REPO_DIR / "configs"


def data_tools_dir() -> Path:
    packaged = _PACKAGE_DIR / "_data_tools"
    return packaged if packaged.is_dir() else _REPO_DIR / "data_tools"


def packaged_config(name: str) -> Path:
    """`exp/clip/quickstart.yaml` (or `mmpretrain://...`, `configs/...`) -> its file."""
    relative = name.removeprefix(SCHEME).removeprefix("configs/")
    path = configs_dir() / relative
    if not path.is_file():
        raise FileNotFoundError(2, f"no packaged config {relative!r} under {configs_dir()}",
                                f"{SCHEME}{relative}")
    return path


def _resolve(value: str, is_config: bool) -> str:
    if value.startswith(SCHEME):
        return str(packaged_config(value))
    if is_config and value.startswith("configs/") and not Path(value).exists():
        candidate = configs_dir() / value.removeprefix("configs/")
        if candidate.is_file():
            return str(candidate)
    return value


def resolve_packaged_configs(args: list[str]) -> list[str]:
    """Rewrite packaged-config references in a CLI argument list to file paths."""
    resolved: list[str] = []
    previous = ""
    for arg in args:
        flag, sep, value = arg.partition("=")
        if sep and flag in _CONFIG_FLAGS:
            resolved.append(f"{flag}={_resolve(value, True)}")
        else:
            resolved.append(_resolve(arg, previous in _CONFIG_FLAGS))
        previous = arg
    return resolved
