"""How far two SID tables agree on *which items go together*, whatever their code labels.

Two independently trained tokenizers label their codes arbitrarily: code 17 of one has nothing to do
with code 17 of the other, so per-level distances between code distributions mostly measure
relabelling. What an analyst wants to know is whether the two group the catalogue the same way. Each
SID prefix depth (first code, first two codes, ...) is a partition of the items; two partitions are
compared with

* **NMI** (normalised mutual information, arithmetic mean of the entropies): 1 = the same grouping up
  to relabelling, 0 = independent groupings;
* **ARI** (adjusted Rand index): agreement of item *pairs* (together in both / apart in both),
  corrected for chance: 1 = identical, ~0 = as random, can go below 0.

Both are computed from the contingency table of the two labellings, exactly, in O(items).
The page also lists example items whose SID changed (``moved_items``).
"""

from __future__ import annotations

import numpy as np


def _labels(sids: np.ndarray) -> np.ndarray:
    """One integer label per row (identical rows, identical label)."""
    return np.unique(np.asarray(sids), axis=0, return_inverse=True)[1].reshape(-1)


def partition_agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """NMI and ARI between two labellings of the same items (``a[k]``, ``b[k]``: item k's group)."""
    a, b = _labels(np.asarray(a).reshape(len(a), -1)), _labels(np.asarray(b).reshape(len(b), -1))
    n = len(a)
    if n < 2:
        return {"nmi": 1.0, "ari": 1.0}
    pairs, joint = np.unique(np.stack([a, b], 1), axis=0, return_counts=True)
    # group sizes (labels from np.unique are 0..k-1, so no empty bins)
    row, col, joint = np.bincount(a).astype(float), np.bincount(b).astype(float), joint.astype(float)

    def entropy(counts: np.ndarray) -> float:
        p = counts / n
        return float(-(p * np.log(p)).sum())

    h_a, h_b = entropy(row), entropy(col)
    mi = float((joint / n * np.log(joint * n / (row[pairs[:, 0]] * col[pairs[:, 1]]))).sum())
    nmi = 1.0 if h_a == h_b == 0 else (2 * mi / (h_a + h_b) if h_a + h_b > 0 else 0.0)
    comb = lambda x: float((x * (x - 1) / 2).sum())  # noqa: E731
    index, sum_a, sum_b, total = comb(joint), comb(row), comb(col), n * (n - 1) / 2
    expected = sum_a * sum_b / total
    top = (sum_a + sum_b) / 2
    ari = 1.0 if top == expected else (index - expected) / (top - expected)
    return {"nmi": round(min(max(nmi, 0.0), 1.0), 6), "ari": round(float(ari), 6)}


def prefix_agreement(reference: np.ndarray, current: np.ndarray) -> dict[str, dict[str, float]]:
    """Agreement per SID prefix depth over the same items (rows aligned): ``{"prefix_1": {...}, ...}``,
    up to the shorter SID; the number of groups on each side is given too."""
    depth = min(reference.shape[1], current.shape[1])
    out = {}
    for d in range(1, depth + 1):
        a, b = reference[:, :d], current[:, :d]
        out[f"prefix_{d}"] = {**partition_agreement(a, b), "groups_reference": int(len(np.unique(a, axis=0))),
                              "groups_current": int(len(np.unique(b, axis=0)))}
    return out


def moved_items(item_ids: list[str], reference: np.ndarray, current: np.ndarray, k: int = 10, seed: int = 0) -> list[dict]:
    """Up to ``k`` items whose SID changed (rows aligned), a seeded sample, with both SIDs."""
    width = max(reference.shape[1], current.shape[1])
    pad = lambda x: np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=-1)  # noqa: E731
    changed = np.flatnonzero((pad(reference) != pad(current)).any(1))
    pick = np.sort(np.random.default_rng(seed).choice(changed, min(k, len(changed)), replace=False)) if len(changed) else []
    return [{"item_id": item_ids[i], "reference": "-".join(map(str, reference[i].tolist())),
             "current": "-".join(map(str, current[i].tolist()))} for i in pick]


def new_item_neighbours(item_ids: list[str], sids: np.ndarray, embeddings: np.ndarray, is_new: np.ndarray,
                        k: int = 3, examples: int = 10, seed: int = 0) -> dict:
    """Where new items landed: each new item's ``k`` nearest existing items by content (cosine), and whether
    its first code is its nearest neighbour's. Returns the share over all new items (``same_first_code``:
    high = new items join the code regions of their content neighbours) and a seeded sample of examples."""
    new, old = np.flatnonzero(is_new), np.flatnonzero(~is_new)
    if not len(new) or not len(old):
        return {"n_new": int(len(new)), "same_first_code": None, "examples": []}
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    nearest = np.empty((len(new), min(k, len(old))), dtype=np.int64)
    for s in range(0, len(new), 1024):  # blocks: a (new x existing) similarity matrix never held whole
        sim = unit[new[s:s + 1024]] @ unit[old].T
        top = np.argsort(-sim, axis=1, kind="stable")[:, :nearest.shape[1]]
        nearest[s:s + 1024] = old[top]
    same = sids[new, 0] == sids[nearest[:, 0], 0]
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(new), min(examples, len(new)), replace=False))
    sid = lambda i: "-".join(map(str, sids[i].tolist()))  # noqa: E731
    return {"n_new": int(len(new)), "same_first_code": float(same.mean()),
            "examples": [{"item_id": item_ids[new[j]], "sid": sid(new[j]),
                          "neighbours": [{"item_id": item_ids[n], "sid": sid(n)} for n in nearest[j]]} for j in pick]}
