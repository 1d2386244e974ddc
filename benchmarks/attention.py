"""Suite `attention`: forward + backward time of `mmpretrain.nn.attention` backends on dense
(ViT-shaped) and packed (block-diagonal, variable-length sequences) inputs.

CPU: SDPA vs math. CUDA: xformers (when installed) vs SDPA vs math, in bf16. Packed input is
one row of concatenated sequences: xformers gets a `BlockDiagonalMask`, SDPA and math a dense
boolean block-diagonal mask. Each backend's output is also checked against math.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from benchmarks.common import column, interleave, print_table, summarize
from mmpretrain.nn.attention import _xformers_unavailable_reason, scaled_dot_product_attention


@dataclass(frozen=True)
class AttentionCase:
    name: str
    batch: int
    tokens: int          # per sequence (dense) or in total (packed)
    heads: int
    head_dim: int
    packed_lengths: tuple[int, ...] = ()


CPU_CASES = [AttentionCase("dense tiny-ViT 8x65 tok", 8, 65, 4, 32),
             AttentionCase("packed 6 seqs / 320 tok", 1, 320, 4, 32, (17, 77, 40, 64, 90, 32))]
GPU_CASES = [AttentionCase("dense ViT-B/16 64x197 tok", 64, 197, 12, 64),
             AttentionCase("packed 64 seqs / 4096 tok", 1, 4096, 8, 64,
                           tuple([33, 77, 50, 96] * 16))]


def _inputs(case: AttentionCase, device: str, dtype: torch.dtype):
    generator = torch.Generator(device="cpu").manual_seed(0)
    shape = (case.batch, case.tokens, case.heads, case.head_dim)
    return [torch.randn(shape, generator=generator).to(device, dtype).requires_grad_() for _ in range(3)]


def _block_diagonal(lengths: tuple[int, ...], device: str) -> torch.Tensor:
    ids = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths)).to(device)
    return (ids[:, None] == ids[None, :]).view(1, 1, len(ids), len(ids))


def _bias_for(backend: str, case: AttentionCase, device: str):
    if not case.packed_lengths:
        return None
    if backend == "xformers":
        from xformers.ops.fmha.attn_bias import BlockDiagonalMask
        return BlockDiagonalMask.from_seqlens(list(case.packed_lengths))
    return _block_diagonal(case.packed_lengths, device)


def _timed(backend: str, case: AttentionCase, device: str, dtype: torch.dtype, iters: int) -> dict[str, float]:
    q, k, v = _inputs(case, device, dtype)
    bias = _bias_for(backend, case, device)

    def step() -> torch.Tensor:
        out = scaled_dot_product_attention(q, k, v, backend=backend, attn_bias=bias)
        out.float().square().mean().backward()
        return out

    step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return {"ms": (time.perf_counter() - start) / iters * 1e3}


def _max_error(backend: str, case: AttentionCase, device: str, dtype: torch.dtype) -> float:
    q, k, v = _inputs(case, device, dtype)
    with torch.no_grad():
        out = scaled_dot_product_attention(q, k, v, backend=backend, attn_bias=_bias_for(backend, case, device))
        ref = scaled_dot_product_attention(q, k, v, backend="math", attn_bias=_bias_for("math", case, device))
    return float((out.float() - ref.float()).abs().max())


def run(device: str = "cpu", rounds: int = 3, quick: bool = False, **_: Any) -> dict[str, Any]:
    cases = GPU_CASES if device == "cuda" else CPU_CASES
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    backends = ["sdpa", "math"]
    xformers_reason = _xformers_unavailable_reason()
    if device == "cuda" and xformers_reason is None:
        backends.insert(0, "xformers")
    iters = 3 if device == "cpu" else 20
    results: dict[str, Any] = {"device": device, "dtype": str(dtype), "xformers": xformers_reason or "available",
                               "cases": []}
    rows = []
    for case in cases:
        print(f"  attention: {case.name}", flush=True)
        measured = interleave({b: (lambda b=b: _timed(b, case, device, dtype, iters)) for b in backends}, rounds)
        medians = {b: summarize(column(measured[b], "ms")) for b in backends}
        errors = {b: _max_error(b, case, device, dtype) for b in backends if b != "math"}
        results["cases"].append({"case": asdict(case), "ms_forward_backward": medians,
                                 "max_abs_error_vs_math": errors})
        for b in backends:
            rows.append([case.name, b, medians[b]["median"], medians["math"]["median"] / medians[b]["median"],
                         errors.get(b)])
    if device == "cuda" and xformers_reason is not None:
        print(f"  xformers not measured: {xformers_reason}")
    results["table"] = print_table(f"attention ({device}, {dtype}): forward+backward ms (median)",
                                   ["case", "backend", "ms", "speed-up vs math", "max |err| vs math"], rows)
    return results
