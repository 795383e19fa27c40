"""Top-K metrics for leave-one-out evaluation (one target per user, full catalogue).

Recall@K (= HR@K)  = 1 if the target is among the first K results, else 0; averaged over users.
NDCG@K             = 1 / log2(rank + 1) if the target's 1-based rank is <= K, else 0 (IDCG = 1).
Intervals: 95% percentile bootstrap over users (``bootstrap_interval``; 1,000 resamples, seeded), so two
rows' intervals say how far apart a difference must be; for a difference between two tokenizers on the
same users use the paired bootstrap (``sidkit.evaluation.ab.paired_bootstrap``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def target_ranks(ranked: Sequence[Sequence], targets: Sequence) -> np.ndarray:
    """1-based rank of each target in its ranked list; 0 where it is absent."""
    out = np.zeros(len(targets), dtype=np.int64)
    for u, (lst, t) in enumerate(zip(ranked, targets)):
        for r, item in enumerate(lst, start=1):
            if item == t:
                out[u] = r
                break
    return out


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    ranks = np.asarray(ranks)
    return float(((ranks > 0) & (ranks <= k)).mean()) if len(ranks) else 0.0


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    return float(per_user_gains(ranks, k, "ndcg").mean()) if len(ranks) else 0.0


def per_user_gains(ranks: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Each user's Recall@K (hit 0/1) or NDCG@K gain: the values Recall@K / NDCG@K average."""
    ranks = np.asarray(ranks)
    hit = (ranks > 0) & (ranks <= k)
    if metric == "recall":
        return hit.astype(np.float64)
    gains = np.zeros(len(ranks))
    gains[hit] = 1.0 / np.log2(ranks[hit] + 1)
    return gains


def bootstrap_interval(values: np.ndarray, n_bootstrap: int = 1000, alpha: float = 0.05,
                       seed: int = 0) -> list[float]:
    """Percentile bootstrap interval [low, high] of the mean of per-user ``values`` (resampling users)."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    n = len(values)
    means = np.empty(n_bootstrap)
    for i in range(n_bootstrap):
        means[i] = values[rng.integers(0, n, n)].mean()
    return [float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))]


def retrieval_metrics(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10),
                      intervals: Sequence[int] = ()) -> dict[str, float]:
    """Recall@K and NDCG@K (K > 1) for each K; for each K in ``intervals`` also ``recall@K_ci`` and
    ``ndcg@K_ci`` (95% bootstrap intervals over users)."""
    out: dict = {f"recall@{k}": recall_at_k(ranks, k) for k in ks}
    out.update({f"ndcg@{k}": ndcg_at_k(ranks, k) for k in ks if k > 1})
    for k in intervals:
        for metric in ("recall", "ndcg"):
            out[f"{metric}@{k}_ci"] = bootstrap_interval(per_user_gains(ranks, k, metric))
    out["n_users"] = int(len(ranks))
    return out


def popularity_strata(train_counts: dict[str, int], head_share: float = 0.2, tail_share: float = 0.5) -> dict[str, str]:
    """Item -> ``head`` / ``torso`` / ``tail`` by training interactions (cut points by item share).

    Items sorted by training count (ties by id): the top ``head_share`` of items are head, the
    bottom ``tail_share`` are tail, the rest torso. Items absent from ``train_counts`` (no
    training interaction) are not listed: callers label them ``cold``.
    """
    items = sorted(train_counts, key=lambda i: (-train_counts[i], i))
    n = len(items)
    n_head = math.ceil(head_share * n)
    n_tail = math.floor(tail_share * n)
    return {item: "head" if pos < n_head else ("tail" if pos >= n - n_tail else "torso")
            for pos, item in enumerate(items)}
