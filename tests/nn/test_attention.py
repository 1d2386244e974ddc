import math

import pytest
import torch

from mmpretrain.nn.attention import (
    MultiheadSelfAttention,
    resolve_backend,
    scaled_dot_product_attention,
)

B, M, H, K = 3, 10, 4, 8


def _qkv(seed: int = 0, dtype=torch.float32, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(B, M, H, K, generator=gen).to(device=device, dtype=dtype)
            for _ in range(3)]


def _key_padding_mask() -> torch.Tensor:
    lengths = torch.tensor([M, 7, 5])
    return torch.arange(M)[None, :] < lengths[:, None]  # True = keep


def _block_diagonal_bool(segment_lengths: list[int]) -> torch.Tensor:
    segment_id = torch.repeat_interleave(torch.arange(len(segment_lengths)),
                                         torch.tensor(segment_lengths))
    return (segment_id[:, None] == segment_id[None, :]).view(1, 1, M, M)


def _bias(kind: str):
    if kind == "none":
        return None
    block = _block_diagonal_bool([4, 6])
    if kind == "bool":
        return block
    additive = torch.zeros(1, H, M, M).masked_fill(~block, float("-inf"))
    return additive + 0.1 * torch.randn(1, H, M, M, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("bias_kind", ["none", "bool", "additive"])
def test_sdpa_matches_math_forward_and_backward(causal, padded, bias_kind):
    key_padding = _key_padding_mask() if padded else None
    outputs, grads = {}, {}
    for backend in ("sdpa", "math"):
        q, k, v = (t.requires_grad_() for t in _qkv())
        out = scaled_dot_product_attention(q, k, v, backend=backend, causal=causal,
                                           key_padding_mask_BM=key_padding,
                                           attn_bias=_bias(bias_kind))
        (out * torch.linspace(-1, 1, K)).sum().backward()
        outputs[backend] = out.detach()
        grads[backend] = [t.grad for t in (q, k, v)]
    assert outputs["sdpa"].shape == (B, M, H, K)
    assert torch.isfinite(outputs["math"]).all()
    torch.testing.assert_close(outputs["sdpa"], outputs["math"], atol=1e-5, rtol=1e-5)
    for grad_sdpa, grad_math in zip(grads["sdpa"], grads["math"]):
        torch.testing.assert_close(grad_sdpa, grad_math, atol=1e-5, rtol=1e-5)


def test_math_matches_explicit_formula():
    q, k, v = _qkv()
    scores = torch.einsum("bmhk,bnhk->bhmn", q, k) / math.sqrt(K)
    expected = torch.einsum("bhmn,bnhk->bmhk", scores.softmax(-1), v)
    actual = scaled_dot_product_attention(q, k, v, backend="math")
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_key_padding_true_means_keep(backend):
    q, k, v = _qkv()
    out = scaled_dot_product_attention(q, k, v, backend=backend,
                                       key_padding_mask_BM=_key_padding_mask())
    # Sample 2 keeps 5 keys: same as attending over the truncated sequence only.
    truncated = scaled_dot_product_attention(q[2:], k[2:, :5], v[2:, :5], backend="math")
    torch.testing.assert_close(out[2:], truncated, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:1], scaled_dot_product_attention(
        q[:1], k[:1], v[:1], backend="math"), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_causal_ignores_future_keys(backend):
    q, k, v = _qkv()
    out = scaled_dot_product_attention(q, k, v, backend=backend, causal=True)
    k2, v2 = k.clone(), v.clone()
    k2[:, 5:] += 3.0
    v2[:, 5:] -= 2.0
    out2 = scaled_dot_product_attention(q, k2, v2, backend=backend, causal=True)
    torch.testing.assert_close(out[:, :5], out2[:, :5])
    assert not torch.allclose(out[:, 5:], out2[:, 5:])


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_block_diagonal_bias_equals_separate_sequences(backend):
    q, k, v = _qkv()
    packed = scaled_dot_product_attention(q, k, v, backend=backend, causal=True,
                                          attn_bias=_block_diagonal_bool([4, 6]))
    first = scaled_dot_product_attention(q[:, :4], k[:, :4], v[:, :4], backend="math", causal=True)
    second = scaled_dot_product_attention(q[:, 4:], k[:, 4:], v[:, 4:], backend="math",
                                          causal=True)
    torch.testing.assert_close(packed, torch.cat([first, second], dim=1), atol=1e-5, rtol=1e-5)


def test_bad_inputs_raise_clear_errors():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="key_padding_mask_BM must be bool"):
        scaled_dot_product_attention(q, k, v, backend="sdpa",
                                     key_padding_mask_BM=_key_padding_mask().float())
    with pytest.raises(ValueError, match="attn_bias must be a 4-d tensor"):
        scaled_dot_product_attention(q, k, v, backend="sdpa", attn_bias=torch.zeros(M, M))
    with pytest.raises(TypeError, match="dense tensor"):
        scaled_dot_product_attention(q, k, v, backend="math", attn_bias=object())
    with pytest.raises(ValueError, match="resolve_backend"):
        scaled_dot_product_attention(q, k, v, backend="auto")
    with pytest.raises(ValueError, match="must be one of"):
        resolve_backend("flash")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_resolve_backend_without_cuda():
    assert resolve_backend("auto") == "sdpa"
    assert resolve_backend("math") == "math"
    with pytest.raises(RuntimeError, match="'xformers' was requested but CUDA is not available"):
        resolve_backend("xformers")


def test_multihead_self_attention_matches_torch_mha():
    torch.manual_seed(0)
    ours = MultiheadSelfAttention(32, 4, backend="sdpa")
    reference = torch.nn.MultiheadAttention(32, 4, batch_first=True)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()}
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(3, 10, 32)
    keep = _key_padding_mask()
    expected = reference(x, x, x, key_padding_mask=~keep, need_weights=False,
                         attn_mask=torch.ones(10, 10, dtype=torch.bool).triu(1))[0]
    actual = ours(x, causal=True, key_padding_mask_BM=keep)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_multihead_self_attention_init_and_no_bias():
    torch.manual_seed(0)
    attn = MultiheadSelfAttention(64, 8, backend="math")
    assert torch.count_nonzero(attn.in_proj_bias) == 0
    assert torch.count_nonzero(attn.out_proj.bias) == 0
    bound = math.sqrt(6 / (64 + 3 * 64))  # xavier-uniform bound of a [3D, D] matrix
    assert attn.in_proj_weight.abs().max() <= bound
    no_bias = MultiheadSelfAttention(64, 8, backend="math", bias=False)
    assert set(no_bias.state_dict()) == {"in_proj_weight", "out_proj.weight"}
    with pytest.raises(ValueError, match="divisible"):
        MultiheadSelfAttention(30, 4)


def _xformers_ready() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import xformers.ops  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.gpu
@pytest.mark.skipif(not _xformers_ready(), reason="needs CUDA and xformers")
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("bias_kind", ["none", "bool", "additive"])
def test_xformers_matches_sdpa(causal, padded, bias_kind):
    key_padding = _key_padding_mask().cuda() if padded else None
    bias = _bias(bias_kind)
    bias = bias.cuda() if bias is not None else None
    outputs, grads = {}, {}
    for backend in ("xformers", "sdpa"):
        q, k, v = (t.requires_grad_() for t in _qkv(dtype=torch.float16, device="cuda"))
        out = scaled_dot_product_attention(q, k, v, backend=backend, causal=causal,
                                           key_padding_mask_BM=key_padding, attn_bias=bias)
        out.float().sum().backward()
        outputs[backend] = out.detach().float()
        grads[backend] = [t.grad.float() for t in (q, k, v)]
    torch.testing.assert_close(outputs["xformers"], outputs["sdpa"], atol=2e-3, rtol=2e-3)
    for grad_x, grad_s in zip(grads["xformers"], grads["sdpa"]):
        torch.testing.assert_close(grad_x, grad_s, atol=1e-2, rtol=1e-2)


@pytest.mark.gpu
@pytest.mark.skipif(not _xformers_ready(), reason="needs CUDA and xformers")
def test_xformers_block_diagonal_mask_object_matches_dense_bias():
    from xformers.ops import fmha

    q, k, v = _qkv(dtype=torch.float16, device="cuda")
    packed_q, packed_k, packed_v = (t[:1] for t in (q, k, v))
    mask = fmha.attn_bias.BlockDiagonalMask.from_seqlens([4, 6]).make_causal()
    out = scaled_dot_product_attention(packed_q, packed_k, packed_v, backend="xformers",
                                       attn_bias=mask)
    dense = scaled_dot_product_attention(packed_q, packed_k, packed_v, backend="sdpa", causal=True,
                                         attn_bias=_block_diagonal_bool([4, 6]).cuda())
    torch.testing.assert_close(out.float(), dense.float(), atol=2e-3, rtol=2e-3)
