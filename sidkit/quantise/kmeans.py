"""Seeded k-means (k-means++ initialisation + Lloyd iterations) in torch."""

from __future__ import annotations

import torch


def squared_distances(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Shape (n, k): ||x_i - c_j||^2, computed without forming (n, k, d)."""
    return (x.pow(2).sum(1, keepdim=True) - 2 * x @ c.T + c.pow(2).sum(1)[None]).clamp_min_(0)


def kmeans(x: torch.Tensor, k: int, *, iters: int = 50, seed: int = 0, tol: float = 1e-6,
           balanced: bool = False) -> torch.Tensor:
    """Centroids (k, d) of ``x`` (n, d). Deterministic for a given seed.

    ``balanced``: each Lloyd step assigns points by Sinkhorn-balanced transport (uniform
    cluster marginals) instead of nearest centroid, as OneRec's balanced RQ-KMeans does; this
    keeps small catalogues from piling their residuals onto a few codes.

    With fewer distinct points than ``k`` the spare centroids are copies of data points
    plus tiny seeded noise, so every code is a valid, distinct vector.
    """
    x = x.detach().float()
    n = x.shape[0]
    g = torch.Generator().manual_seed(seed)
    if n == 0:
        raise ValueError("k-means needs at least one point")
    # k-means++
    # draws on the CPU generator (the same on every device); the points may be on any device
    first = torch.randint(n, (1,), generator=g, device="cpu")
    centroids = [x[first]]
    d2 = squared_distances(x, centroids[0]).squeeze(1)
    for _ in range(1, min(k, n)):
        total = d2.sum()
        if total <= 0:
            break
        idx = torch.multinomial((d2 / total).cpu(), 1, generator=g)
        centroids.append(x[idx])
        d2 = torch.minimum(d2, squared_distances(x, x[idx]).squeeze(1))
    c = torch.cat(centroids)
    if c.shape[0] < k:
        extra = x[torch.randint(n, (k - c.shape[0],), generator=g, device="cpu")]
        scale = x.std().clamp_min(1e-3) * 1e-2
        c = torch.cat([c, extra + scale * torch.randn(extra.shape, generator=g, device="cpu").to(x.device)])
    prev = None
    for _ in range(iters):
        d = squared_distances(x, c)
        assign = _balanced_assign(d) if balanced else d.argmin(1)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).float()
        moved = counts > 0
        new = c.clone()
        new[moved] = sums[moved] / counts[moved, None]
        shift = (new - c).pow(2).sum()
        c = new
        inertia = squared_distances(x, c).min(1).values.sum()
        if prev is not None and (shift <= tol or abs(prev - inertia) <= tol * max(prev, 1e-12)):
            break
        prev = inertia
    return c


def _balanced_assign(d: torch.Tensor) -> torch.Tensor:
    from sidkit.quantise.levels import sinkhorn_codes

    return sinkhorn_codes(d, eps=0.01, iters=20)
