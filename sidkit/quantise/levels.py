"""Per-level quantisers for :class:`~sidkit.quantise.residual.ResidualQuantiser`.

A level maps residuals ``r`` (batch, dim) to codes (batch,) and code vectors, and
returns its own loss. Two kinds:

* :class:`CodebookLevel`: a learned codebook (VQ-VAE style). Loss
  ``||sg[r] - e||^2 + beta ||r - sg[e]||^2`` (beta = commitment, 0.25 by default).
  Gradient to the encoder by straight-through (``ste``) or the rotation trick
  (``rotation``, Fifty et al. 2024). Optional Sinkhorn-balanced assignment
  (``sinkhorn_eps > 0``; LETTER/MQL4GRec use it on the last level with eps 0.003).
* :class:`KMeansLevel`: a codebook fit by k-means and frozen (RQ-KMeans).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from sidkit.quantise.kmeans import kmeans, squared_distances


class GradientMode(StrEnum):
    STE = "ste"
    ROTATION = "rotation"


class LevelOutput(NamedTuple):
    codes: torch.Tensor        # (batch,) int64
    quantised: torch.Tensor    # (batch, dim), carries the gradient trick
    loss: torch.Tensor         # scalar
    distances: torch.Tensor    # (batch, K) squared distances of the residual to each code


def rotation_trick(e: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Equals ``q`` in the forward pass; the gradient to ``e`` is rotated and scaled like e -> q."""
    u = F.normalize(e, dim=-1).detach()
    qn = F.normalize(q, dim=-1).detach()
    w = F.normalize(u + qn, dim=-1).detach()
    rot = e - 2 * (e * w).sum(-1, keepdim=True) * w + 2 * (e * u).sum(-1, keepdim=True) * qn
    scale = (q.norm(dim=-1, keepdim=True) / e.norm(dim=-1, keepdim=True).clamp_min(1e-8)).detach()
    return scale * rot


def sinkhorn_codes(distances: torch.Tensor, eps: float, iters: int = 50) -> torch.Tensor:
    """Balanced assignment: codes from Sinkhorn-Knopp on exp(-d/eps) with uniform marginals."""
    d = distances.double()
    d = (d - d.min()) / (d.max() - d.min()).clamp_min(1e-12)
    logq = -d / eps
    n, k = logq.shape
    for _ in range(iters):
        logq = logq - torch.logsumexp(logq, dim=0, keepdim=True) - torch.log(torch.tensor(float(k), dtype=d.dtype))
        logq = logq - torch.logsumexp(logq, dim=1, keepdim=True) - torch.log(torch.tensor(float(n), dtype=d.dtype))
    return logq.argmax(1)


class CodebookLevel(nn.Module):
    def __init__(self, codebook_size: int, dim: int, *, beta: float = 0.25,
                 gradient: GradientMode | str = GradientMode.STE, sinkhorn_eps: float = 0.0,
                 sinkhorn_iters: int = 50):
        super().__init__()
        self.codebook_size, self.dim, self.beta = codebook_size, dim, beta
        self.gradient = GradientMode(gradient)
        self.sinkhorn_eps, self.sinkhorn_iters = sinkhorn_eps, sinkhorn_iters
        self.codebook = nn.Parameter(torch.empty(codebook_size, dim).uniform_(-1 / codebook_size, 1 / codebook_size))

    @torch.no_grad()
    def init_from(self, residuals: torch.Tensor, seed: int, iters: int = 50) -> None:
        self.codebook.copy_(kmeans(residuals, self.codebook_size, iters=iters, seed=seed))

    def assign(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = squared_distances(r.detach().float(), self.codebook.detach().float())
        if self.sinkhorn_eps > 0 and r.shape[0] > 1:
            return sinkhorn_codes(d, self.sinkhorn_eps, self.sinkhorn_iters), d
        return d.argmin(1), d

    def forward(self, r: torch.Tensor) -> LevelOutput:
        codes, d = self.assign(r)
        e = self.codebook[codes]
        loss = F.mse_loss(e, r.detach()) + self.beta * F.mse_loss(r, e.detach())
        if self.gradient is GradientMode.ROTATION:
            q = rotation_trick(r, e)
        else:
            q = r + (e - r).detach()
        return LevelOutput(codes, q, loss, d)


class KMeansLevel(nn.Module):
    """A frozen codebook fit by k-means (optionally balanced) on the residuals of the whole dataset."""

    def __init__(self, codebook_size: int, dim: int, balanced: bool = False):
        super().__init__()
        self.codebook_size, self.dim, self.balanced = codebook_size, dim, balanced
        self.register_buffer("codebook", torch.zeros(codebook_size, dim))

    @torch.no_grad()
    def init_from(self, residuals: torch.Tensor, seed: int, iters: int = 50) -> None:
        self.codebook.copy_(kmeans(residuals, self.codebook_size, iters=iters, seed=seed, balanced=self.balanced))

    def forward(self, r: torch.Tensor) -> LevelOutput:
        d = squared_distances(r.detach().float(), self.codebook)
        codes = d.argmin(1)
        e = self.codebook[codes]
        return LevelOutput(codes, e, r.new_zeros(()), d)
