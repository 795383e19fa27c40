"""AUC and GAUC.

AUC   area under the ROC curve over all impressions (ties count one half).
GAUC  sum_u w_u AUC_u / sum_u w_u with w_u = the user's number of impressions; users whose
      impressions are all one class are dropped (their AUC is undefined).
"""

from __future__ import annotations

import numpy as np


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties; NaN if only one class is present."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def per_user_auc(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> dict:
    """user -> (AUC over the user's impressions, number of impressions); AUC NaN for one-class users."""
    users = np.asarray(users)
    labels = np.asarray(labels)
    scores = np.asarray(scores)
    order = np.argsort(users, kind="mergesort")
    u_sorted = users[order]
    bounds = np.flatnonzero(np.r_[True, u_sorted[1:] != u_sorted[:-1], True])
    out = {}
    for a, b in zip(bounds[:-1], bounds[1:]):
        idx = order[a:b]
        out[u_sorted[a].item()] = (auc(labels[idx], scores[idx]), len(idx))
    return out


def gauc(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> tuple[float, int]:
    """(GAUC, number of users kept)."""
    kept = [(value, n) for value, n in per_user_auc(users, labels, scores).values() if not np.isnan(value)]
    weight = sum(n for _, n in kept)
    return (sum(v * n for v, n in kept) / weight if weight else float("nan")), len(kept)
