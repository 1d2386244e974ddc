"""Attention masks for packed sequences: several documents share a row, none sees another.

`segment_ids_BL` numbers the documents of each row (1, 2, ...; 0 = trailing padding). Self-
attention over a packed row is block-diagonal causal: token i of a row attends to token j iff
both lie in the same segment and j <= i. On the xformers backend that is a
`BlockDiagonalCausalMask` over the rows concatenated into one sequence (no dense mask is
built); on SDPA and math it is a dense boolean `[B, 1, L, L]` same-segment mask combined with
the backend's causal flag.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def segment_run_lengths(segment_ids_BL: Tensor) -> list[int]:
    """Lengths of the runs of equal segment id, row after row (padding is its own run)."""
    lengths: list[int] = []
    for row_L in segment_ids_BL.cpu():
        _, counts = torch.unique_consecutive(row_L, return_counts=True)
        lengths += counts.tolist()
    return lengths


def block_causal_attention(segment_ids_BL: Tensor, backend: str) -> tuple[Any, bool]:
    """(attn_bias, causal) arguments for `scaled_dot_product_attention` over packed rows."""
    if segment_ids_BL.ndim != 2:
        raise ValueError(f"segment_ids must be [B, L], got shape {tuple(segment_ids_BL.shape)}")
    if backend == "xformers":
        from xformers.ops.fmha.attn_bias import BlockDiagonalCausalMask

        return BlockDiagonalCausalMask.from_seqlens(segment_run_lengths(segment_ids_BL)), False
    same_segment_BLL = segment_ids_BL[:, :, None] == segment_ids_BL[:, None, :]
    return same_segment_BLL[:, None], True
