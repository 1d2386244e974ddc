"""Block-diagonal causal attention over packed documents equals attending each document alone."""

from __future__ import annotations

import pytest
import torch

from mmpretrain.nn.attention import resolve_backend, scaled_dot_product_attention
from mmpretrain.nn.packing import block_causal_attention, segment_run_lengths

LENGTHS = ((5, 3, 4), (7, 2))  # documents per row; rows padded to 14


def _segments(rows: tuple[tuple[int, ...], ...], length: int = 14) -> torch.Tensor:
    segment_ids = torch.zeros(len(rows), length, dtype=torch.long)
    for r, row in enumerate(rows):
        offset = 0
        for s, n in enumerate(row, start=1):
            segment_ids[r, offset:offset + n] = s
            offset += n
    return segment_ids


def test_dense_mask_is_same_segment_and_run_lengths_cover_padding():
    segment_ids = _segments(LENGTHS)
    bias, causal = block_causal_attention(segment_ids, "sdpa")
    assert causal and bias.shape == (2, 1, 14, 14) and bias.dtype == torch.bool
    assert bias[0, 0, 6, 5] and not bias[0, 0, 5, 4] and not bias[1, 0, 7, 6] and bias[1, 0, 13, 9]
    assert segment_run_lengths(segment_ids) == [5, 3, 4, 2, 7, 2, 5]


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_packed_attention_equals_each_document_alone(backend):
    torch.manual_seed(0)
    segment_ids = _segments(LENGTHS)
    q, k, v = (torch.randn(2, 14, 2, 8) for _ in range(3))
    bias, causal = block_causal_attention(segment_ids, backend)
    packed = scaled_dot_product_attention(q, k, v, backend=backend, causal=causal, attn_bias=bias)
    for r, row in enumerate(LENGTHS):
        offset = 0
        for n in row:
            span = slice(offset, offset + n)
            alone = scaled_dot_product_attention(q[r:r + 1, span], k[r:r + 1, span], v[r:r + 1, span],
                                                 backend="math", causal=True)
            torch.testing.assert_close(packed[r:r + 1, span], alone)
            offset += n
    # a dense mask without the document blocks mixes documents: the check above can fail
    plain = scaled_dot_product_attention(q, k, v, backend=backend, causal=True)
    assert not torch.allclose(plain[0, 5:8], packed[0, 5:8])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="xformers path needs CUDA")
def test_xformers_block_diagonal_causal_mask_matches_dense_sdpa():
    pytest.importorskip("xformers.ops")
    assert resolve_backend("xformers") == "xformers"
    torch.manual_seed(0)
    segment_ids = _segments(LENGTHS).cuda()
    q, k, v = (torch.randn(2, 14, 2, 16, device="cuda", dtype=torch.float16) for _ in range(3))
    bias, causal = block_causal_attention(segment_ids, "xformers")
    assert not causal and not torch.is_tensor(bias)
    fused = scaled_dot_product_attention(q, k, v, backend="xformers", causal=causal, attn_bias=bias)
    dense_bias, dense_causal = block_causal_attention(segment_ids, "math")
    reference = scaled_dot_product_attention(q, k, v, backend="math", causal=dense_causal, attn_bias=dense_bias)
    torch.testing.assert_close(fused.float(), reference.float(), atol=2e-3, rtol=2e-3)
