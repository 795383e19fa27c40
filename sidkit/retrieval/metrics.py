"""Top-K metrics for leave-one-out evaluation (one target per user, full catalogue).

Recall@K (= HR@K)  = 1 if the target is among the first K results, else 0; averaged over users.
NDCG@K             = 1 / log2(rank + 1) if the target's 1-based rank is <= K, else 0 (IDCG = 1).
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
    ranks = np.asarray(ranks)
    if not len(ranks):
        return 0.0
    hit = (ranks > 0) & (ranks <= k)
    gains = np.zeros(len(ranks))
    gains[hit] = 1.0 / np.log2(ranks[hit] + 1)
    return float(gains.mean())


def retrieval_metrics(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    out = {f"recall@{k}": recall_at_k(ranks, k) for k in ks}
    out.update({f"ndcg@{k}": ndcg_at_k(ranks, k) for k in ks if k > 1})
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
