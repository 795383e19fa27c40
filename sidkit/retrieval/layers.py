"""Transformer pieces shared by both generators: the causal block, cross-attention, init and masks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sidkit.retrieval.config import GeneratorConfig
from sidkit.retrieval.dropout import FastDropout
from sidkit.retrieval.feedforward import FeedForward


class Block(nn.Module):
    """Pre-norm causal self-attention block; ``step`` decodes one token per beam against cached keys."""

    def __init__(self, cfg: GeneratorConfig, d_ff: int | None = None):
        super().__init__()
        d, d_ff = cfg.d_model, d_ff or cfg.d_ff
        self.n_heads, self.p = cfg.n_heads, cfg.dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ff = FeedForward(d, d_ff)
        self.drop = FastDropout(cfg.dropout)

    def _qkv(self, x: torch.Tensor):
        B, T, d = x.shape
        return self.qkv(self.ln1(x)).reshape(B, T, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)

    def _finish(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, T, d)))
        return x + self.drop(self.ff(self.ln2(x)))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor):
        q, k, v = self._qkv(x)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=self.p if self.training else 0.0)
        return self._finish(x, a), (k, v)

    def step(self, x: torch.Tensor, hist: tuple[torch.Tensor, torch.Tensor], hist_real: torch.Tensor,
             own: tuple[torch.Tensor, torch.Tensor], beams: int):
        """x (users * beams, 1, d). The history keys (users, h, T, dh) are shared by a user's beams
        (never copied per beam); ``own`` holds each beam's keys of the tokens it generated."""
        q, k, v = self._qkv(x)                                   # (rows, h, 1, dh)
        own_k, own_v = torch.cat([own[0], k], 2), torch.cat([own[1], v], 2)   # (rows, h, s, dh)
        U, H, T, dh = hist[0].shape
        qu = q.reshape(U, beams, H, dh).transpose(1, 2)          # (U, h, beams, dh)
        s_hist = qu @ hist[0].transpose(2, 3)                    # (U, h, beams, T)
        s_hist = s_hist.masked_fill(~hist_real[:, None, None, :], float("-inf"))
        s_own = (q @ own_k.transpose(2, 3)).reshape(U, beams, H, -1).transpose(1, 2)  # (U, h, beams, s)
        w = torch.softmax(torch.cat([s_hist, s_own], -1).float() / math.sqrt(dh), -1).to(q.dtype)
        a = w[..., :T] @ hist[1]                                  # (U, h, beams, dh)
        a = a + (w[..., T:].transpose(1, 2).reshape(U * beams, H, 1, -1) @ own_v).reshape(U, beams, H, dh).transpose(1, 2)
        a = a.transpose(1, 2).reshape(U * beams, H, 1, dh)       # (rows, h, 1, dh)
        return self._finish(x, a), (own_k, own_v)

    def step_own(self, x: torch.Tensor, own: tuple[torch.Tensor, torch.Tensor] | None):
        """x (rows, 1, d): one new position attending to its row's cached keys/values ``own``
        (rows, h, s, dh; None at the first position) and to itself; returns the output and the cache."""
        q, k, v = self._qkv(x)
        if own is not None:
            k, v = torch.cat([own[0], k], 2), torch.cat([own[1], v], 2)
        return self._finish(x, F.scaled_dot_product_attention(q, k, v)), (k, v)


class CrossAttention(nn.Module):
    """Pre-norm attention from decoder positions to encoder outputs (``ItemHistoryGenerator`` with
    ``cross_attention``). Memory keys/values are projected once per history and shared by all of
    its target slots: queries (G, n, L, d) -- n target slots of L decoder positions -- attend to
    memory (G, M, d) under ``allowed`` (G, n, M), slot i's causal view of the history."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.ln = nn.LayerNorm(d)
        self.q, self.kv, self.proj = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)
        self.drop, self.attention_drop = FastDropout(cfg.dropout), FastDropout(cfg.dropout)

    def project(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """memory (G, M, d) -> keys, values (G, M, h, dh)."""
        G, M, d = memory.shape
        return self.kv(memory).reshape(G, M, 2, self.n_heads, d // self.n_heads).unbind(2)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        G, n, L, d = x.shape
        H = self.n_heads
        q = self.q(self.ln(x)).reshape(G, n, L, H, d // H)
        s = torch.einsum("gnlhd,gmhd->gnhlm", q, k) / math.sqrt(d // H)
        s = s.masked_fill(~allowed[:, :, None, None, :], float("-inf"))
        w = self.attention_drop(torch.softmax(s.float(), -1).to(q.dtype))
        a = torch.einsum("gnhlm,gmhd->gnlhd", w, v).reshape(G, n, L, d)
        return x + self.drop(self.proj(a))


def small_init(model: nn.Module) -> None:
    """GPT-style N(0, 0.02) init: with tied N(0, 1) embeddings the initial logits have std ~sqrt(d_model)."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)


def causal_mask(real: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) attention mask: causal, and no attention to padding -- except a padding
    position to itself, so that no row is fully masked (a fully masked row gives NaN, which
    0-weight attention still spreads into real positions)."""
    T = real.shape[1]
    eye = torch.eye(T, dtype=torch.bool, device=real.device)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=real.device))
    return (causal[None] & (real[:, None, :] | eye))[:, None]
