"""Sharded checkpoints (``torch.distributed.checkpoint``): atomic to publish, safe to read.

A checkpoint ``PATH`` is a symlink to a versioned directory ``PATH.shards-N`` holding every
rank's shard files, DCP's ``.metadata`` and ``meta.pt`` (the trainer state: step, loops,
callbacks, saved with ``torch.save`` and read with ``weights_only=True``). All ranks write
into a fresh ``PATH.shards-N``; only when every rank has finished does rank 0 swap the link
(``os.replace``, atomic), then delete the previous version. A kill at any moment leaves
``PATH`` pointing at a complete checkpoint (or absent, before the first save).

Reading never unpickles arbitrary objects: DCP's ``.metadata`` is unpickled with an
allowlist of its own dataclasses and torch's dtype/size types, and non-tensor entries are
loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch import Tensor
from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner, _EmptyStateDictLoadPlanner
from torch.distributed.checkpoint.planner import ReadItem

from mmpretrain.distributed.scalars import restore_scalar_shapes

META_FILE = "meta.pt"
# names (Lightning state-dict keys) of 0-dim parameters lifted to [1] for sharding
SCALARS_KEY = "mmpretrain_lifted_scalars"
_VERSION_INFIX = ".shards-"
_SAFE_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "int", "float", "str", "bytes",
                  "bool", "complex", "slice", "getattr"}


class _MetadataUnpickler(pickle.Unpickler):
    """Only DCP's metadata classes, torch sizes/dtypes/layouts/memory formats and containers."""

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("torch.distributed.checkpoint."):
            return super().find_class(module, name)
        if module == "torch" and (name == "Size" or isinstance(
                getattr(torch, name, None), (torch.dtype, torch.layout, torch.memory_format))):
            return getattr(torch, name)
        if (module, name) == ("torch.serialization", "_get_layout"):  # a layout by its name
            return super().find_class(module, name)
        if module == "pathlib" and name in ("PosixPath", "WindowsPath", "PurePosixPath",
                                            "PureWindowsPath"):  # the checkpoint id
            return super().find_class(module, name)
        if module == "collections" and name == "OrderedDict":
            return super().find_class(module, name)
        if module == "builtins" and name in _SAFE_BUILTINS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"sharded checkpoint metadata refers to {module}.{name}, "
                                     "which is not a checkpoint metadata type; refusing to load it")


class SafeFileSystemReader(FileSystemReader):
    def read_metadata(self, *args: Any, **kwargs: Any):
        path = self._get_metadata_path(kwargs.get("rank"))
        with self.fs.create_stream(path, "rb") as metadata_file:
            metadata = _MetadataUnpickler(metadata_file).load()
        if getattr(metadata, "storage_meta", None) is None:
            from torch.distributed.checkpoint.metadata import StorageMeta
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


def _load_bytes_safely(planner: DefaultLoadPlanner, read_item: ReadItem, value: io.BytesIO) -> None:
    from torch.distributed.checkpoint._nested_dict import set_element  # noqa: PLC0415
    loaded = torch.load(value, weights_only=True)
    if planner.flatten_state_dict:
        set_element(planner.original_state_dict, planner.mappings[read_item.dest_index.fqn], loaded)
    else:
        planner.state_dict[read_item.dest_index.fqn] = loaded


class SafeLoadPlanner(DefaultLoadPlanner):
    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        _load_bytes_safely(self, read_item, value)


class _SafeEmptyStateDictLoadPlanner(_EmptyStateDictLoadPlanner):
    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        _load_bytes_safely(self, read_item, value)


def is_sharded_checkpoint(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / ".metadata").is_file()


def _next_version(path: Path) -> Path:
    current = os.path.realpath(path) if path.is_symlink() else ""
    taken = {p.name for p in path.parent.glob(path.name + _VERSION_INFIX + "*")}
    number = 0
    while (path.name + _VERSION_INFIX + str(number)) in taken or \
            str(path.parent / (path.name + _VERSION_INFIX + str(number))) == current:
        number += 1
    return path.parent / (path.name + _VERSION_INFIX + str(number))


def save_sharded(state: dict[str, Any], meta: dict[str, Any], path: str | Path, *, rank: int,
                 broadcast: Callable[[Any], Any], barrier: Callable[[], None]) -> Path:
    """Every rank writes its shards of ``state``; rank 0 writes ``meta`` and publishes ``path``.

    ``broadcast`` / ``barrier``: the strategy's collectives (identity / no-op on one process).
    Returns the versioned directory written."""
    path = Path(path)
    target = Path(broadcast(str(_next_version(path)) if rank == 0 else None))
    if rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
    barrier()
    dcp.save(state, storage_writer=FileSystemWriter(str(target)))
    barrier()
    if rank == 0:
        torch.save(meta, target / META_FILE)
        previous = Path(os.path.realpath(path)) if path.is_symlink() else None
        if path.exists() and not path.is_symlink():  # a directory from an older layout
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        link = path.parent / f".{path.name}.link-{os.getpid()}"
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(target.name, link)
        os.replace(link, path)
        if previous is not None and previous != target and previous.is_dir():
            shutil.rmtree(previous)
    barrier()
    return target


def load_sharded(state: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """Fill ``state`` (sharded state dicts shaped like the saved ones) in place from ``path``
    on every rank; returns the trainer ``meta`` dict."""
    path = Path(path)
    if not is_sharded_checkpoint(path):
        raise FileNotFoundError(f"{path}: not a sharded checkpoint directory (no .metadata)")
    dcp.load(state, storage_reader=SafeFileSystemReader(str(path)), planner=SafeLoadPlanner())
    meta_file = path / META_FILE
    return torch.load(meta_file, map_location="cpu", weights_only=True) if meta_file.is_file() else {}


def consolidate_sharded_checkpoint(path: str | Path) -> dict[str, Any]:
    """One process, no process group: the full ``state_dict`` (unsharded tensors, lifted
    scalars back to 0-dim) + ``meta`` entries, i.e. what a single-file Lightning checkpoint
    holds minus optimizer state."""
    path = Path(path)
    if not is_sharded_checkpoint(path):
        raise FileNotFoundError(f"{path}: not a sharded checkpoint directory (no .metadata)")
    # the loader torch's own dcp_to_torch_save uses: dcp.load cannot fill an empty dict
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict  # noqa: PLC0415
    full: dict[str, Any] = {}
    _load_state_dict(full, storage_reader=SafeFileSystemReader(str(path)),
                     planner=_SafeEmptyStateDictLoadPlanner(keys={"state_dict"}), no_dist=True)
    state_dict = full.get("state_dict", {})
    if not isinstance(state_dict, dict) or not all(isinstance(v, Tensor) for v in state_dict.values()):
        raise ValueError(f"{path}: sharded checkpoint holds no tensor 'state_dict'")
    meta_file = path / META_FILE
    meta = torch.load(meta_file, map_location="cpu", weights_only=True) if meta_file.is_file() else {}
    state_dict = restore_scalar_shapes(state_dict, meta.get(SCALARS_KEY, ()))
    return {**meta, "state_dict": state_dict}
