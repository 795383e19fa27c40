"""Comparing methods over training seeds: a two-level bootstrap over seeds and users.

One downstream row measures one trained tokenizer. Its bootstrap interval over users says how much the
figure would move on other users, not how much it moves when the same config is trained again: a retrained
MovieLens tokenizer moved R@10 by ~0.015 (BENCHMARKS.md), as much as most differences between methods. So a
claim about a *method* needs several seeds, and an interval that sees both sources of noise.

``seed_bootstrap(base, other)``: ``base`` and ``other`` are lists of per-user values (one array per seed of
each method, e.g. Recall@10 hits), all over the same test users in the same order. Each resample draws the
users with replacement (the same draw for every seed of both methods: the comparison stays paired on users)
and, independently for each method, its seeds with replacement; the statistic is the difference of the
methods' means over their drawn seeds. ``ci_low``/``ci_high`` are its (alpha/2, 1 - alpha/2) percentiles and
``p_value`` the two-sided bootstrap p-value of "no difference" (2 * min(P(d <= 0), P(d >= 0)), floored at
1 / n_bootstrap). Without ``other`` it is the interval of ``base``'s mean over seeds and users.

``paired_seeds=True`` is for an ablation against its full method when seed ``s`` of one was trained with the
same seeds as seed ``s`` of the other (``benchmarks/seed_spread.py`` sets ``tokenizer.seed`` and
``features.seed`` alike): each resample then draws one set of seed indices for both, so the difference is
taken seed against seed as well as user against user, and a seed that is good for both cancels out.

With few seeds (3) resampling them understates the seed variance (by (n - 1) / n) and the percentile
interval is coarse; the per-seed figures are reported beside it so the reader sees the spread itself.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _matrix(values: Sequence[np.ndarray], n_users: int | None) -> np.ndarray:
    m = np.stack([np.asarray(v, dtype=np.float64) for v in values]) if len(values) else np.empty((0, 0))
    if m.shape[0] == 0:
        raise ValueError("need at least one seed")
    if n_users is not None and m.shape[1] != n_users:
        raise ValueError(f"every seed must cover the same users ({m.shape[1]} vs {n_users})")
    return m


def seed_bootstrap(base: Sequence[np.ndarray], other: Sequence[np.ndarray] | None = None, n_bootstrap: int = 2000,
                   alpha: float = 0.05, seed: int = 0, paired_seeds: bool = False) -> dict:
    """Two-level (seeds, users) bootstrap of a mean over seeds, or of the difference ``other - base``."""
    a = _matrix(base, None)
    b = _matrix(other, a.shape[1]) if other is not None else None
    if paired_seeds and (b is None or len(b) != len(a)):
        raise ValueError("paired_seeds needs the same number of seeds in both methods")
    n = a.shape[1]
    rng = np.random.default_rng(seed)
    stats = np.empty(n_bootstrap)
    for i in range(n_bootstrap):
        counts = np.bincount(rng.integers(0, n, n), minlength=n) / n     # the users' draw, shared by every seed
        seeds_a = rng.integers(0, len(a), len(a))
        mean_a = (a[seeds_a] @ counts).mean()
        if b is None:
            stats[i] = mean_a
        else:
            seeds_b = seeds_a if paired_seeds else rng.integers(0, len(b), len(b))
            stats[i] = (b[seeds_b] @ counts).mean() - mean_a
    per_seed_a = a.mean(axis=1)
    out = {"n_seeds": int(len(a)), "n_users": int(n), "per_seed": per_seed_a.tolist(),
           "mean": float(per_seed_a.mean()), "seed_sd": float(per_seed_a.std(ddof=1)) if len(a) > 1 else None,
           "ci_low": float(np.quantile(stats, alpha / 2)), "ci_high": float(np.quantile(stats, 1 - alpha / 2))}
    if b is None:
        return out
    per_seed_b = b.mean(axis=1)
    p = 2 * min((stats <= 0).mean(), (stats >= 0).mean())
    return {**out, "other_per_seed": per_seed_b.tolist(), "other_mean": float(per_seed_b.mean()),
            "lift": float(per_seed_b.mean() - per_seed_a.mean()), "p_value": float(min(1.0, max(p, 1.0 / n_bootstrap)))}
