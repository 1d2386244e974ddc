"""Batch sampling stages: concept-aware online selection (CABS-DM/FM) and baselines."""

from mmpretrain.data.sampling.selection import BatchSelection, SuperBatchId, SuperBatchSelector

__all__ = ["BatchSelection", "SuperBatchId", "SuperBatchSelector"]
