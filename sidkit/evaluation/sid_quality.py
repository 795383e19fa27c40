"""SID quality: collisions and codebook health, and the gate that fails a run on them.

Definitions (methods.md §1):

* ``collision_rate`` = (N - #unique SID tuples) / N, before resolution (MACRec/MQL4GRec).
  ``colliding_item_share`` = share of items whose tuple is shared (the other convention).
* ``utilization[l]`` = #codes used at level l / K_l.
* ``perplexity[l]`` = exp(H(p_l)), p_l the empirical code frequencies at level l;
  ``normalized_entropy[l]`` = H(p_l) / log K_l.
* ``gini[l]``: Gini coefficient of the K_l code counts (unused codes count as 0):
  0 = perfectly even usage, -> 1 = everything on one code.
* ``dead_codes[l]`` = K_l - #codes used.
* ``joint_utilization`` = #unique tuples / min(N, prod K_l).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sidkit.errors import SIDHealthError


def collision_rate(codes: np.ndarray) -> float:
    n = len(codes)
    return 0.0 if n == 0 else (n - len(np.unique(codes, axis=0))) / n


def colliding_item_share(codes: np.ndarray) -> float:
    if len(codes) == 0:
        return 0.0
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return float((counts[inverse.ravel()] > 1).mean())


def level_counts(column: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(column.astype(np.int64), minlength=k)[:k] if len(column) else np.zeros(k, np.int64)


def entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum()) if counts.sum() else 0.0


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 = equal)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    cum = np.cumsum(x)
    return float((n + 1 - 2 * (cum / cum[-1]).sum()) / n)


@dataclass(frozen=True)
class SIDQuality:
    n_items: int
    levels: int
    codebook_sizes: list[int]
    collision_rate: float
    colliding_item_share: float
    max_items_per_sid: int
    collision_rate_final: float
    sid_length_final: int
    utilization: list[float]
    perplexity: list[float]
    normalized_entropy: list[float]
    gini: list[float]
    dead_codes: list[int]
    joint_utilization: float
    recon_loss: float | None = None
    recon_loss_per_view: dict[str, float] = field(default_factory=dict)
    # multi-expert SIDs (MACRec: one branch per modality): collision rate of each expert's own block of codes,
    # before resolution -- what a per-modality trie sees; the joint rate above can be 0 while a branch collides
    collision_rate_per_expert: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def expert_blocks(info: dict, width: int) -> dict[str, slice]:
    """Each expert's block of SID positions, where a tokenizer's ``describe()`` names two or more experts laid
    side by side with ``levels`` codes each (multi-expert methods); empty otherwise."""
    experts, levels = info.get("experts") or [], int(info.get("levels") or 0)
    if len(experts) < 2 or levels * len(experts) != width:
        return {}
    return {name: slice(e * levels, (e + 1) * levels) for e, name in enumerate(experts)}


def sid_quality(codes: np.ndarray, final_sids: np.ndarray | None, codebook_sizes: list[int],
                recon_loss: float | None = None, recon_loss_per_view: dict[str, float] | None = None,
                experts: dict[str, slice] | None = None) -> SIDQuality:
    codes = np.asarray(codes, dtype=np.int64)
    n, L = codes.shape
    counts = [level_counts(codes[:, l], codebook_sizes[l]) for l in range(L)]
    ent = [entropy(c) for c in counts]
    _, group_sizes = np.unique(codes, axis=0, return_counts=True) if n else (None, np.array([0]))
    final = codes if final_sids is None else np.asarray(final_sids)
    space = float(np.prod([float(k) for k in codebook_sizes]))
    return SIDQuality(
        n_items=int(n), levels=int(L), codebook_sizes=[int(k) for k in codebook_sizes],
        collision_rate=collision_rate(codes), colliding_item_share=colliding_item_share(codes),
        max_items_per_sid=int(group_sizes.max()), collision_rate_final=collision_rate(final),
        sid_length_final=int(final.shape[1]),
        utilization=[float((c > 0).sum() / len(c)) for c in counts],
        perplexity=[float(np.exp(h)) for h in ent],
        normalized_entropy=[float(h / np.log(len(c))) if len(c) > 1 else 0.0 for h, c in zip(ent, counts)],
        gini=[gini(c) for c in counts],
        dead_codes=[int((c == 0).sum()) for c in counts],
        joint_utilization=float(len(np.unique(codes, axis=0)) / max(min(n, space), 1)),
        recon_loss=None if recon_loss is None else float(recon_loss),
        recon_loss_per_view=dict(recon_loss_per_view or {}),
        collision_rate_per_expert={name: collision_rate(codes[:, block]) for name, block in (experts or {}).items()},
    )


class HealthThresholds(BaseModel):
    """The ``health:`` section: a run fails when any check is violated. ``None`` switches a check off.

    ``min_utilization`` applies per level; it is capped by what the data allows
    (a level cannot use more codes than there are items).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_utilization: float | None = Field(0.1, ge=0, le=1)
    min_normalized_entropy: float | None = Field(0.3, ge=0, le=1)
    max_collision_rate: float | None = Field(None, ge=0, le=1)
    max_collision_rate_final: float | None = Field(0.0, ge=0, le=1)


def health_violations(q: SIDQuality, t: HealthThresholds) -> list[str]:
    problems = []
    for l, (u, k) in enumerate(zip(q.utilization, q.codebook_sizes)):
        if t.min_utilization is not None:
            need = min(t.min_utilization, q.n_items / k)
            if u < need - 1e-12:
                problems.append(f"level {l}: codebook utilisation {u:.3f} < {need:.3f} (collapse)")
    for l, h in enumerate(q.normalized_entropy):
        if t.min_normalized_entropy is not None and h < t.min_normalized_entropy and q.n_items > 1:
            problems.append(f"level {l}: normalised code entropy {h:.3f} < {t.min_normalized_entropy}")
    if t.max_collision_rate is not None and q.collision_rate > t.max_collision_rate:
        problems.append(f"collision rate before resolution {q.collision_rate:.4f} > {t.max_collision_rate}")
    if t.max_collision_rate_final is not None and q.collision_rate_final > t.max_collision_rate_final:
        problems.append(f"collision rate after resolution {q.collision_rate_final:.4f} > {t.max_collision_rate_final}")
    return problems


def check_health(q: SIDQuality, t: HealthThresholds) -> None:
    problems = health_violations(q, t)
    if problems:
        raise SIDHealthError("SID health gate failed: " + "; ".join(problems))
