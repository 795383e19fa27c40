"""A/B-style offline comparison of two SID tokenizers (champion vs challenger) on the same users.

Both sides are evaluated on the *same* held-out users (the same splits, the same sampled
ranking negatives), so per-user results pair up. For every metric:

* ``lift`` = challenger - champion (absolute), ``relative_lift`` = lift / champion;
* a **paired bootstrap** over users (``n_bootstrap`` resamples, seeded): each resample
  draws users with replacement and recomputes both sides' metric on the same draw;
  ``ci_low``/``ci_high`` are the (alpha/2, 1 - alpha/2) percentiles of the lift;
* ``p_value``: two-sided bootstrap p-value of "no difference", 2 * min(P(lift* <= 0),
  P(lift* >= 0)), floored at 1 / n_bootstrap.

Metrics: ``recall@K`` / ``ndcg@K`` from the per-user target ranks, ``gauc`` from the per-user
AUCs (impression-weighted, one-class users dropped), each also per popularity stratum.

The decision rule (``DecisionRule``): promote when the primary metric's lift is at least
``min_lift``, is significant (p < alpha) if ``require_significance``, and no popularity
stratum loses more than ``max_stratum_drop`` on the primary metric (strata with fewer than
``min_stratum_users`` users are not judged). Without a champion the challenger is promoted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

from sidkit.evaluation.downstream import STRATA, PerUser
from sidkit.retrieval.metrics import per_user_gains


class DecisionRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    primary: str = "gauc"
    min_lift: float = 0.0
    require_significance: bool = True
    alpha: float = 0.05
    max_stratum_drop: float = 0.02
    min_stratum_users: int = 30
    n_bootstrap: int = 1000
    seed: int = 0


def per_user_values(result: PerUser, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(value, weight) per user; the metric is sum(value * weight) / sum(weight) over kept users."""
    if metric == "gauc":
        if result.auc is None:
            raise ValueError("gauc needs ranking results")
        ok = np.isfinite(result.auc)
        return np.where(ok, result.auc, 0.0), np.where(ok, result.weight, 0.0)
    if result.ranks is None:
        raise ValueError(f"{metric} needs retrieval results")
    kind, k = metric.split("@")
    return per_user_gains(result.ranks, int(k), kind), np.ones(len(result.ranks))


def paired_bootstrap(champion: tuple[np.ndarray, np.ndarray], challenger: tuple[np.ndarray, np.ndarray],
                     n_bootstrap: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict:
    """Paired bootstrap of the lift of a weighted mean; both sides indexed by the same users."""
    (va, wa), (vb, wb) = champion, challenger
    if len(va) != len(vb):
        raise ValueError(f"paired comparison needs the same users on both sides ({len(va)} vs {len(vb)})")
    mean = lambda v, w: float((v * w).sum() / w.sum()) if w.sum() > 0 else float("nan")  # noqa: E731
    a, b = mean(va, wa), mean(vb, wb)
    rng = np.random.default_rng(seed)
    n = len(va)
    lifts = np.empty(n_bootstrap)
    for i in range(n_bootstrap):
        idx = rng.integers(0, n, n)
        counts = np.bincount(idx, minlength=n)
        wa_i, wb_i = wa * counts, wb * counts
        ma = (va * wa_i).sum() / wa_i.sum() if wa_i.sum() > 0 else np.nan
        mb = (vb * wb_i).sum() / wb_i.sum() if wb_i.sum() > 0 else np.nan
        lifts[i] = mb - ma
    lifts = lifts[np.isfinite(lifts)]
    if not len(lifts):
        return {"champion": a, "challenger": b, "lift": b - a, "relative_lift": None,
                "ci_low": None, "ci_high": None, "p_value": None, "n_users": int(n)}
    p = 2 * min((lifts <= 0).mean(), (lifts >= 0).mean())
    return {"champion": a, "challenger": b, "lift": b - a,
            "relative_lift": (b - a) / a if a else None,
            "ci_low": float(np.quantile(lifts, alpha / 2)), "ci_high": float(np.quantile(lifts, 1 - alpha / 2)),
            "p_value": float(min(1.0, max(p, 1.0 / n_bootstrap))), "n_users": int(n)}


def compare(champion: dict[str, PerUser], challenger: dict[str, PerUser], rule: DecisionRule | dict | None = None,
            metrics: list[str] | None = None) -> dict:
    """Compare per-user results (keys ``retrieval`` and/or ``ranking``) and apply the decision rule."""
    rule = rule if isinstance(rule, DecisionRule) else DecisionRule.model_validate(rule or {})
    names = metrics or ([*(["recall@5", "recall@10", "ndcg@5", "ndcg@10"] if "retrieval" in challenger else []),
                         *(["gauc"] if "ranking" in challenger else [])])
    out: dict[str, dict] = {}
    by_stratum: dict[str, dict] = {}
    for name in names:
        side = "ranking" if name == "gauc" else "retrieval"
        a, b = champion[side], challenger[side]
        if not np.array_equal(a.strata, b.strata):
            raise ValueError("champion and challenger were not evaluated on the same users")
        va, vb = per_user_values(a, name), per_user_values(b, name)
        out[name] = paired_bootstrap(va, vb, rule.n_bootstrap, rule.alpha, rule.seed)
        by_stratum[name] = {}
        for s in STRATA:
            m = b.strata == s
            if m.sum():
                by_stratum[name][s] = paired_bootstrap((va[0][m], va[1][m]), (vb[0][m], vb[1][m]),
                                                       rule.n_bootstrap, rule.alpha, rule.seed)
    return {"metrics": out, "by_popularity": by_stratum, "decision": decide(out, by_stratum, rule),
            "rule": rule.model_dump()}


def decide(metrics: dict[str, dict], by_stratum: dict[str, dict], rule: DecisionRule) -> dict:
    if rule.primary not in metrics:
        raise ValueError(f"primary metric {rule.primary!r} was not measured (have {sorted(metrics)})")
    m = metrics[rule.primary]
    checks = []
    lift = m["lift"]
    checks.append({"check": f"{rule.primary} lift >= {rule.min_lift}", "value": lift,
                   "passed": bool(lift is not None and np.isfinite(lift) and lift >= rule.min_lift)})
    if rule.require_significance:
        p = m["p_value"]
        checks.append({"check": f"{rule.primary} lift significant (p < {rule.alpha})", "value": p,
                       "passed": bool(p is not None and p < rule.alpha and lift > 0)})
    for s, r in by_stratum.get(rule.primary, {}).items():
        if r["n_users"] < rule.min_stratum_users or r["lift"] is None or not np.isfinite(r["lift"]):
            continue
        checks.append({"check": f"{s} stratum {rule.primary} drop <= {rule.max_stratum_drop}", "value": r["lift"],
                       "passed": bool(r["lift"] >= -rule.max_stratum_drop)})
    promote = all(c["passed"] for c in checks)
    failed = [c["check"] for c in checks if not c["passed"]]
    reason = (f"challenger {'beats' if lift > 0 else 'matches'} champion on {rule.primary} by {lift:+.4f} "
              f"(95% CI {m['ci_low']:+.4f}..{m['ci_high']:+.4f}, p={m['p_value']:.3g}); all checks passed") \
        if promote else f"not promoted: failed {'; '.join(failed)} ({rule.primary} lift {lift:+.4f}, p={m['p_value']})"
    return {"promote": promote, "reason": reason, "checks": checks}


def no_champion_decision() -> dict:
    return {"promote": True, "reason": "no champion (no model version in stage 'production'): the challenger "
                                       "is promoted as the first champion", "checks": []}


@dataclass
class ABComparison:
    """The comparison as an artifact: ``result`` (JSON-safe dict) and its HTML page."""

    result: dict

    def to_html(self) -> str:
        from sidkit.monitoring.pages import ab_html

        return ab_html(self.result)
