"""Checkpoint files that are either the old complete file or the new complete file, never half.

`save_checkpoint` serialises into a hidden temp file in the target's directory, fsyncs it,
renames it over the target (`os.replace` is atomic on POSIX within one filesystem) and fsyncs
the directory, so a kill -9 or power loss at any moment leaves the previous checkpoint intact.

`load_checkpoint` never unpickles arbitrary objects: it always uses
`torch.load(weights_only=True)`, and a file that is not a checkpoint (or that holds pickled
code) fails with one message naming the file.
"""

from __future__ import annotations

import glob
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

_TEMP_SUFFIX = ".tmp-"


def _temp_path(path: Path) -> Path:
    # hidden and not ending in .ckpt, so `ckpt_path="last"` never picks a half-written file
    return path.with_name(f".{path.name}{_TEMP_SUFFIX}{os.getpid()}")


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some filesystems do not allow opening directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_atomically(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    """Call `write(binary_file)` on a temp file, fsync it and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in glob.glob(glob.escape(str(path.with_name(f".{path.name}{_TEMP_SUFFIX}"))) + "*"):
        os.remove(stale)  # left by a writer that was killed mid-save
    temp = _temp_path(path)
    try:
        with open(temp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def load_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """`torch.load(path, weights_only=True)` with a clear error for files that are not checkpoints."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exn:
        raise ValueError(
            f"checkpoint {str(path)!r} holds Python objects other than tensors and plain containers; "
            "refusing to unpickle it (only weights_only=True loads are allowed). "
            f"Loader said: {str(exn).splitlines()[0]}") from exn
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exn:
        raise ValueError(f"checkpoint {str(path)!r} is not a readable torch checkpoint "
                         f"(truncated or not a checkpoint): {exn}") from exn


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO: atomic fsynced writes, `weights_only=True` reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        replace_atomically(path, lambda f: torch.save(checkpoint, f))

    def load_checkpoint(self, path: str | os.PathLike, map_location: Any | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        if weights_only is False:
            raise ValueError(f"refusing to load {str(path)!r} with weights_only=False; "
                             "mmpretrain only loads checkpoints with weights_only=True")
        return load_checkpoint_file(path, map_location if map_location is not None else "cpu")
