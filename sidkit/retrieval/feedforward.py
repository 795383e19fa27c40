"""The transformer feed-forward ``Linear -> GELU -> Linear``, trained in cache-sized row chunks.

The SID decoder's feed-forward is 4096 wide and runs on every SID position of every target: its
(rows x 4096) intermediates are ~60 MB per batch, several times the CPU's cache, so the GELU and
its backward stream them through memory (the profile put GELU alone at ~20% of a generator epoch).
Training here keeps only the block's input: the forward pass runs ``chunk_rows`` rows at a time,
and the backward pass recomputes each chunk's pre-activation (one extra 128 x 4096 matmul per
chunk, ~17% more FLOPs) while it is still in cache. Measured 1.3x faster per feed-forward step at
the decoder's shape (BENCHMARKS.md) and it no longer stores the intermediates. The same function
and parameter names as ``nn.Sequential(Linear, GELU, Linear)``; inference and small inputs take the
ordinary path. Under bf16 autocast the chunks run in bf16 (what autocast's Linear layers would compute),
the weights cast once per call; the output is bf16, as autocast's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _ChunkedGELUMLP(torch.autograd.Function):
    """``Linear -> GELU -> Linear`` over row chunks, computed in ``dtype`` (fp32, or bf16 under autocast: the
    weights cast once per call instead of once per chunk); weight gradients accumulate in the weights' dtype."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, chunk_rows: int, dtype: torch.dtype):
        ctx.save_for_backward(x, w1, b1, w2)
        ctx.chunk_rows, ctx.dtype = chunk_rows, dtype
        with torch.autocast("cpu", enabled=False):
            xc, w1c, b1c, w2c, b2c = (t.to(dtype) for t in (x, w1, b1, w2, b2))
            out = xc.new_empty(x.shape[0], w2.shape[0])
            for i in range(0, x.shape[0], chunk_rows):
                torch.addmm(b2c, F.gelu(torch.addmm(b1c, xc[i:i + chunk_rows], w1c.t())), w2c.t(),
                            out=out[i:i + chunk_rows])
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, w1, b1, w2 = ctx.saved_tensors
        dtype = ctx.dtype
        xc, w1c, b1c, w2c = (t.to(dtype) for t in (x, w1, b1, w2))
        grad_out = grad_out.to(dtype).contiguous()
        gx, gw1, gb1, gw2 = torch.empty_like(x), torch.zeros_like(w1), torch.zeros_like(b1), torch.zeros_like(w2)
        for i in range(0, x.shape[0], ctx.chunk_rows):
            xi, gc = xc[i:i + ctx.chunk_rows], grad_out[i:i + ctx.chunk_rows]
            pre = torch.addmm(b1c, xi, w1c.t())
            g_pre = torch.ops.aten.gelu_backward(gc @ w2c, pre)
            if dtype == w1.dtype:
                gw2.addmm_(gc.t(), F.gelu(pre))
                gw1.addmm_(g_pre.t(), xi)
                gb1 += g_pre.sum(0)
            else:
                gw2 += (gc.t() @ F.gelu(pre)).to(gw2.dtype)
                gw1 += (g_pre.t() @ xi).to(gw1.dtype)
                gb1 += g_pre.sum(0, dtype=gb1.dtype)
            gx[i:i + ctx.chunk_rows] = g_pre @ w1c
        return gx, gw1, gb1, gw2, grad_out.sum(0, dtype=torch.float32).to(w1.dtype), None, None


class FeedForward(nn.Sequential):
    """``Linear(d, d_ff) -> GELU -> Linear(d_ff, d)``; training in row chunks of ``chunk_rows``."""

    chunked = True   # False: always the ordinary path (e.g. to count the model's nominal FLOPs)

    def __init__(self, d: int, d_ff: int, chunk_rows: int = 512):
        super().__init__(nn.Linear(d, d_ff), nn.GELU(), nn.Linear(d_ff, d))
        self.chunk_rows = chunk_rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, _, second = self
        rows = x.numel() // x.shape[-1]
        autocast = torch.is_autocast_enabled("cpu")
        dtype = torch.get_autocast_dtype("cpu") if autocast else x.dtype
        if (not self.chunked or not torch.is_grad_enabled() or dtype not in (torch.float32, torch.bfloat16)
                or (not autocast and dtype != torch.float32) or first.weight.dtype != torch.float32
                or rows <= self.chunk_rows or not (x.requires_grad or first.weight.requires_grad)):
            return super().forward(x)
        flat = x.reshape(rows, x.shape[-1])
        out = _ChunkedGELUMLP.apply(flat, first.weight, first.bias, second.weight, second.bias, self.chunk_rows, dtype)
        return out.reshape(*x.shape[:-1], second.out_features)
