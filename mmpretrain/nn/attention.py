"""One attention entry point with three interchangeable backends.

Layout is batch-first ``[B, M, H, K]`` (batch, sequence, heads, head dim) everywhere, the
layout xformers wants; the SDPA backend transposes internally.

Mask conventions (all backends):
- ``causal``: query ``i`` attends to keys ``j <= i`` (top-left aligned).
- ``key_padding_mask_BM``: bool ``[B, N]``, **True = keep** (a real token), False = padding
  that no query may attend to. Note this is the opposite of ``torch.nn.MultiheadAttention``.
- ``attn_bias``: a dense tensor broadcastable to ``[B, H, M, N]`` (dims 0 and 1 may be 1).
  Boolean means **True = keep**; floating point is added to the scores (``-inf`` = masked).
  The xformers backend also accepts an ``xformers.ops.fmha.attn_bias.AttentionBias`` object
  (e.g. ``BlockDiagonalMask`` for packed sequences), passed through unchanged; with B > 1
  such an object covers the B rows concatenated into one sequence (``nn/packing.py``).
Every query must keep at least one key, otherwise its output is NaN.
"""

import functools
import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

AttentionBackendName = Literal["auto", "xformers", "sdpa", "math"]
_BACKEND_NAMES = ("auto", "xformers", "sdpa", "math")
_XFORMERS_BIAS_ALIGNMENT = 8  # memory_efficient_attention wants bias rows padded to 8


@functools.lru_cache(maxsize=1)
def _xformers_unavailable_reason() -> str | None:
    if not torch.cuda.is_available():
        return "CUDA is not available"
    try:
        import xformers.ops  # noqa: F401
    except ImportError as err:
        return f"`import xformers.ops` failed ({err}); install it with `pip install 'mmpretrain[gpu]'`"
    return None


def resolve_backend(name: AttentionBackendName) -> str:
    """Turn a requested backend into a concrete one; call once when a module is built."""
    if name not in _BACKEND_NAMES:
        raise ValueError(f"attention backend must be one of {_BACKEND_NAMES}, got {name!r}")
    if name == "auto":
        return "xformers" if _xformers_unavailable_reason() is None else "sdpa"
    if name == "xformers":
        reason = _xformers_unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"attention backend 'xformers' was requested but {reason}; "
                               "use attn_backend='sdpa' or 'auto' instead")
    return name


def _check_inputs(q_BMHK: Tensor, k_BMHK: Tensor, key_padding_mask_BM: Tensor | None,
                  attn_bias: Any) -> None:
    if q_BMHK.ndim != 4 or k_BMHK.ndim != 4:
        raise ValueError(f"q/k/v must be [B, M, H, K]; got q {tuple(q_BMHK.shape)}, "
                         f"k {tuple(k_BMHK.shape)}")
    batch, keys = k_BMHK.shape[0], k_BMHK.shape[1]
    if key_padding_mask_BM is not None and (
            key_padding_mask_BM.dtype != torch.bool
            or tuple(key_padding_mask_BM.shape) != (batch, keys)):
        raise ValueError(f"key_padding_mask_BM must be bool [{batch}, {keys}] (True = keep), got "
                         f"{key_padding_mask_BM.dtype} {tuple(key_padding_mask_BM.shape)}")
    if torch.is_tensor(attn_bias) and attn_bias.ndim != 4:
        raise ValueError("attn_bias must be a 4-d tensor broadcastable to [B, H, M, N], got "
                         f"shape {tuple(attn_bias.shape)}")


def _dense_mask(q_BMHK: Tensor, k_BMHK: Tensor, causal: bool, key_padding_mask_BM: Tensor | None,
                attn_bias: Tensor | None) -> Tensor | None:
    """All masks combined into one tensor broadcastable to [B, H, M, N].

    Stays boolean (True = keep) when every part is boolean, else becomes additive in q's dtype.
    """
    queries, keys = q_BMHK.shape[1], k_BMHK.shape[1]
    parts: list[Tensor] = []
    if causal:
        parts.append(torch.ones(queries, keys, dtype=torch.bool, device=q_BMHK.device)
                     .tril().view(1, 1, queries, keys))
    if key_padding_mask_BM is not None:
        parts.append(key_padding_mask_BM[:, None, None, :])
    if attn_bias is not None:
        parts.append(attn_bias)
    if not parts:
        return None
    if all(part.dtype == torch.bool for part in parts):
        return functools.reduce(torch.logical_and, parts)
    additive = [
        torch.zeros(part.shape, dtype=q_BMHK.dtype, device=q_BMHK.device)
        .masked_fill_(~part, float("-inf")) if part.dtype == torch.bool
        else part.to(q_BMHK.dtype)
        for part in parts
    ]
    return functools.reduce(torch.add, additive)


def _math_attention(q_BMHK: Tensor, k_BMHK: Tensor, v_BMHK: Tensor, mask: Tensor | None) -> Tensor:
    # Reference path: float32 throughout so it can judge half-precision backends too.
    q_BHMK = q_BMHK.transpose(1, 2).float()
    k_BHNK = k_BMHK.transpose(1, 2).float()
    v_BHNK = v_BMHK.transpose(1, 2).float()
    scores_BHMN = (q_BHMK * q_BHMK.shape[-1] ** -0.5) @ k_BHNK.transpose(-1, -2)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores_BHMN = scores_BHMN.masked_fill(~mask, float("-inf"))
        else:
            scores_BHMN = scores_BHMN + mask.float()
    out_BHMK = scores_BHMN.softmax(dim=-1) @ v_BHNK
    return out_BHMK.transpose(1, 2).to(q_BMHK.dtype)


def _sdpa_attention(q_BMHK: Tensor, k_BMHK: Tensor, v_BMHK: Tensor, causal: bool,
                    mask: Tensor | None) -> Tensor:
    out_BHMK = F.scaled_dot_product_attention(
        q_BMHK.transpose(1, 2), k_BMHK.transpose(1, 2), v_BMHK.transpose(1, 2),
        attn_mask=mask, is_causal=causal)
    return out_BHMK.transpose(1, 2)


def _xformers_attention(q_BMHK: Tensor, k_BMHK: Tensor, v_BMHK: Tensor, causal: bool,
                        key_padding_mask_BM: Tensor | None, attn_bias: Any) -> Tensor:
    import xformers.ops as xops

    if not q_BMHK.is_cuda:
        raise RuntimeError(f"attention backend 'xformers' needs CUDA tensors, got {q_BMHK.device}")
    if attn_bias is not None and not torch.is_tensor(attn_bias):
        if causal or key_padding_mask_BM is not None:
            raise ValueError("with an xformers AttentionBias object, express causality and "
                             "padding inside that object instead of causal/key_padding_mask_BM")
        if q_BMHK.shape[0] > 1:
            # packed-sequence biases (BlockDiagonal*) describe the batch as one concatenated row
            batch, queries = q_BMHK.shape[:2]
            flat = [t.reshape(1, -1, *t.shape[2:]) for t in (q_BMHK, k_BMHK, v_BMHK)]
            out_1MHK = xops.memory_efficient_attention(*flat, attn_bias=attn_bias)
            return out_1MHK.view(batch, queries, *out_1MHK.shape[2:])
        bias = attn_bias
    elif key_padding_mask_BM is not None or attn_bias is not None:
        bias = _aligned_additive_bias(
            _dense_mask(q_BMHK, k_BMHK, causal, key_padding_mask_BM, attn_bias), q_BMHK, k_BMHK)
    elif causal:
        bias = xops.LowerTriangularMask()
    else:
        bias = None
    return xops.memory_efficient_attention(q_BMHK, k_BMHK, v_BMHK, attn_bias=bias)


def _aligned_additive_bias(mask: Tensor, q_BMHK: Tensor, k_BMHK: Tensor) -> Tensor:
    batch, queries, heads = q_BMHK.shape[:3]
    keys = k_BMHK.shape[1]
    if mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=q_BMHK.dtype, device=q_BMHK.device).masked_fill_(
            ~mask, float("-inf"))
    padded_keys = math.ceil(keys / _XFORMERS_BIAS_ALIGNMENT) * _XFORMERS_BIAS_ALIGNMENT
    storage = torch.empty(batch, heads, queries, padded_keys, dtype=q_BMHK.dtype,
                          device=q_BMHK.device)
    bias_BHMN = storage[..., :keys]
    bias_BHMN.copy_(mask.expand(batch, heads, queries, keys))
    return bias_BHMN


def scaled_dot_product_attention(
    q_BMHK: Tensor,
    k_BMHK: Tensor,
    v_BMHK: Tensor,
    *,
    backend: str,
    causal: bool = False,
    key_padding_mask_BM: Tensor | None = None,
    attn_bias: Any = None,
) -> Tensor:
    """softmax(q kᵀ / sqrt(K) + masks) v on ``[B, M, H, K]`` tensors; returns ``[B, M, H, K]``.

    ``backend`` must be a resolved name (see :func:`resolve_backend`); mask conventions are in
    the module docstring.
    """
    _check_inputs(q_BMHK, k_BMHK, key_padding_mask_BM, attn_bias)
    if backend == "xformers":
        return _xformers_attention(q_BMHK, k_BMHK, v_BMHK, causal, key_padding_mask_BM, attn_bias)
    if attn_bias is not None and not torch.is_tensor(attn_bias):
        raise TypeError(f"attention backend {backend!r} needs attn_bias as a dense tensor, got "
                        f"{type(attn_bias).__name__}")
    if backend == "sdpa":
        # A plain causal mask goes through is_causal so SDPA can pick its fused kernels.
        has_dense_parts = key_padding_mask_BM is not None or attn_bias is not None
        mask = _dense_mask(q_BMHK, k_BMHK, causal and has_dense_parts, key_padding_mask_BM,
                           attn_bias)
        return _sdpa_attention(q_BMHK, k_BMHK, v_BMHK, causal and mask is None, mask)
    if backend == "math":
        mask = _dense_mask(q_BMHK, k_BMHK, causal, key_padding_mask_BM, attn_bias)
        return _math_attention(q_BMHK, k_BMHK, v_BMHK, mask)
    raise ValueError(f"unknown resolved attention backend {backend!r}; expected 'xformers', "
                     "'sdpa' or 'math' (call resolve_backend first)")


class MultiheadSelfAttention(nn.Module):
    """Self-attention whose parameters are named like ``torch.nn.MultiheadAttention``.

    ``in_proj_weight [3D, D]``, ``in_proj_bias [3D]``, ``out_proj.{weight,bias}``, so
    open_clip state dicts load 1:1.
    """

    def __init__(self, dim: int, heads: int, backend: AttentionBackendName = "auto",
                 bias: bool = True):
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"attention width {dim} must be divisible by heads {heads}")
        self.dim = dim
        self.heads = heads
        self.backend = resolve_backend(backend)
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim)) if bias else None
        self.out_proj = nn.Linear(dim, dim, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Same scheme as torch.nn.MultiheadAttention.
        nn.init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)

    def forward(self, x_BMD: Tensor, *, causal: bool = False,
                key_padding_mask_BM: Tensor | None = None, attn_bias: Any = None) -> Tensor:
        batch, length, _ = x_BMD.shape
        qkv_BM3HK = F.linear(x_BMD, self.in_proj_weight, self.in_proj_bias).view(
            batch, length, 3, self.heads, self.dim // self.heads)
        q_BMHK, k_BMHK, v_BMHK = qkv_BM3HK.unbind(dim=2)
        out_BMHK = scaled_dot_product_attention(
            q_BMHK, k_BMHK, v_BMHK, backend=self.backend, causal=causal,
            key_padding_mask_BM=key_padding_mask_BM, attn_bias=attn_bias)
        return self.out_proj(out_BMHK.reshape(batch, length, self.dim))
