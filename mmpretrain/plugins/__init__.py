"""Trainer plugins: crash-safe checkpoint IO."""

from mmpretrain.plugins.atomic_checkpoint_io import AtomicCheckpointIO, load_checkpoint_file, replace_atomically

__all__ = ["AtomicCheckpointIO", "load_checkpoint_file", "replace_atomically"]
