"""SID drift monitoring with Evidently 0.7 (its new API, called directly).

Two questions analysts ask, one function each:

* ``compare_tokenizers``: two tokenizer versions over the *same* catalogue. How many items
  changed SID (churn, whole SID and per level)? How did each level's code distribution,
  collision rate and code usage change? (Codes of independently trained tokenizers are
  arbitrary labels, so per-level distribution shift there mostly measures relabelling:
  exactly what breaks caches keyed by SID. Churn is the headline.)
* ``compare_snapshots``: one tokenizer over two catalogue/interaction snapshots. Do new
  items land in other code regions than existing ones? Did the content embeddings of the
  catalogue move? Did demand (interactions per item, and interactions per code of each
  level) shift? And did any existing item's SID change?

Evidently details that matter: SID levels are declared *categorical* (one column per level;
undeclared integer codes would be treated as numbers); the statistical method is fixed
(Jensen-Shannon distance for categorical, normalised Wasserstein for numerical; Evidently's
default switches test with the sample size) so that thresholds mean the same at every scale;
columns constant in both datasets are left out of Evidently (some tests return NaN on them)
and reported as not drifted; every distance is computed on the full data (the JSON is kept
whole), while the HTML is rendered from a sample of ``sample_rows`` rows so it stays small.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from sidkit.monitoring.agreement import moved_items, new_item_neighbours, prefix_agreement


class DriftThresholds(BaseModel):
    """When a comparison counts as drift (the drift gate's rule)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_sid_churn: float = 0.05          # share of common items whose SID changed
    level_distance: float = 0.1          # Jensen-Shannon distance above which a SID level has drifted
    max_drifted_level_share: float = 0.0  # drift if more than this share of levels drifted
    embedding_distance: float = 0.1      # normalised Wasserstein distance per embedding component
    max_drifted_embedding_share: float = 0.5
    # JS distance between the interaction shares per SID code; two samples of one distribution are
    # ~0.1 apart at a few hundred users (measured on the synthetic data), so the default sits above that
    popularity_distance: float = 0.15
    # JS distance between new and existing items' codes at a level: new content in other code regions
    new_vs_existing_distance: float = 0.35
    # a few new items give a large JS distance by chance alone: the distance must also be significant
    # against random new/existing labellings of the same items (permutation test)
    alpha: float = 0.01
    permutations: int = 200
    embedding_components: int = 8        # principal components of the content embedding that are compared
    sample_rows: int = 5000              # rows rendered into the HTML (the JSON uses all rows)
    seed: int = 0


@dataclass
class SIDState:
    """What one side of a comparison knows: SIDs per item, optional content and demand."""

    item_ids: list[str]
    sids: np.ndarray                         # (items, levels)
    embeddings: np.ndarray | None = None     # (items, dim) content embedding
    interaction_counts: np.ndarray | None = None  # (items,) interactions per item
    label: str = ""

    def __post_init__(self) -> None:
        self.sids = np.asarray(self.sids, np.int64)
        if self.sids.ndim != 2 or self.sids.shape[0] != len(self.item_ids):
            raise ValueError(f"{self.label or 'state'}: sids must be (items, levels), got {self.sids.shape} "
                             f"for {len(self.item_ids)} items")
        for name in ("embeddings", "interaction_counts"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != len(self.item_ids):
                raise ValueError(f"{self.label or 'state'}: {name} has {len(arr)} rows for {len(self.item_ids)} items")

    def index(self) -> dict[str, int]:
        return {i: k for k, i in enumerate(self.item_ids)}


@dataclass
class DriftResult:
    summary: dict
    evidently_html: dict[str, str]          # section -> standalone Evidently HTML
    evidently_json: dict[str, dict] = field(default_factory=dict)  # section -> full Evidently JSON

    def to_html(self) -> str:
        from sidkit.monitoring.pages import drift_html

        # as the ZenML dashboard shows it: in a sandboxed frame, so the page names the full report on disk
        return drift_html(self.summary, list(self.evidently_html), name_full_page=True)


# ------------------------------------------------------------------ statistics

def js_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count/probability vectors."""
    p = np.asarray(a, float)
    q = np.asarray(b, float)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0 if p.sum() == q.sum() else 1.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(x):
        nz = x > 0
        return float((x[nz] * np.log2(x[nz] / m[nz])).sum())

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def permutation_p_value(codes: np.ndarray, is_new: np.ndarray, observed: float, n: int = 200, seed: int = 0) -> float:
    """P(JS(new, existing) >= observed) when the new/existing labels are shuffled (add-one smoothed)."""
    rng = np.random.default_rng(seed)
    size = int(codes.max()) + 1
    hits = 0
    for _ in range(n):
        perm = rng.permutation(is_new)
        hits += js_distance(np.bincount(codes[~perm], minlength=size), np.bincount(codes[perm], minlength=size)) >= observed
    return (hits + 1) / (n + 1)


def _code_counts(codes: np.ndarray, weights: np.ndarray | None, size: int) -> np.ndarray:
    return np.bincount(codes, weights=weights, minlength=size)


def sid_churn(reference: SIDState, current: SIDState) -> dict:
    """Churn over the items both states know: whole SID, and per level (position)."""
    ref_index = reference.index()
    common = [(ref_index[i], k) for k, i in enumerate(current.item_ids) if i in ref_index]
    n_levels = max(reference.sids.shape[1], current.sids.shape[1])
    if not common:
        return {"n_common": 0, "whole": 0.0, "per_level": [0.0] * n_levels, "kept": 0}
    r, c = map(np.asarray, zip(*common))
    a, b = reference.sids[r], current.sids[c]
    width = max(a.shape[1], b.shape[1])
    pad = lambda x: np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=-1)  # noqa: E731
    a, b = pad(a), pad(b)
    changed = a != b
    return {"n_common": len(common), "whole": float(changed.any(1).mean()),
            "per_level": [float(v) for v in changed.mean(0)], "kept": int((~changed.any(1)).sum())}


def _usage(sids: np.ndarray) -> dict:
    n = len(sids)
    unique = len({tuple(r) for r in sids.tolist()})
    return {"n_items": n, "collision_rate": (n - unique) / n if n else 0.0,
            "distinct_codes_per_level": [int(len(np.unique(sids[:, l]))) for l in range(sids.shape[1])]}


# ------------------------------------------------------------------ Evidently

def _evidently_section(ref: pd.DataFrame, cur: pd.DataFrame, categorical: list[str], numerical: list[str],
                       thresholds: DriftThresholds) -> tuple[dict[str, float], dict, str | None]:
    """Per-column drift distances (full data), the Evidently JSON, and the HTML (sampled data).

    Columns constant (and equal) in both frames are left out of Evidently: distance 0.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    distances: dict[str, float] = {}
    keep_cat, keep_num = [], []
    for col in categorical + numerical:
        values = pd.concat([ref[col], cur[col]], ignore_index=True)
        if values.nunique(dropna=False) <= 1:
            distances[col] = 0.0
        else:
            (keep_cat if col in categorical else keep_num).append(col)
    if not keep_cat and not keep_num or ref.empty or cur.empty:
        return distances, {}, None
    columns = keep_cat + keep_num

    def run(r: pd.DataFrame, c: pd.DataFrame):
        definition = DataDefinition(categorical_columns=keep_cat, numerical_columns=keep_num)
        preset = DataDriftPreset(columns=columns, cat_method="jensenshannon", num_method="wasserstein",
                                 cat_threshold=thresholds.level_distance,
                                 num_threshold=thresholds.embedding_distance)
        return Report([preset], include_tests=True).run(
            current_data=Dataset.from_pandas(c[columns].reset_index(drop=True), data_definition=definition),
            reference_data=Dataset.from_pandas(r[columns].reset_index(drop=True), data_definition=definition))

    snap = run(ref, cur)
    full = json.loads(snap.json())
    for metric in full.get("metrics", []):
        col = metric.get("config", {}).get("column")
        if col is not None and metric.get("config", {}).get("type", "").endswith("ValueDrift"):
            value = metric.get("value")
            distances[col] = float(value) if value is not None and math.isfinite(float(value)) else float("nan")
    for col in columns:  # a NaN from a test on a near-constant column: fall back to our own distance
        if not math.isfinite(distances.get(col, float("nan"))) and col in keep_cat:
            cats = pd.Index(pd.concat([ref[col], cur[col]]).unique())
            distances[col] = js_distance(ref[col].value_counts().reindex(cats, fill_value=0).to_numpy(),
                                         cur[col].value_counts().reindex(cats, fill_value=0).to_numpy())
    rng = np.random.default_rng(thresholds.seed)
    sample = lambda d: d.iloc[np.sort(rng.choice(len(d), thresholds.sample_rows, replace=False))] \
        if len(d) > thresholds.sample_rows else d  # noqa: E731
    small = run(sample(ref), sample(cur)) if max(len(ref), len(cur)) > thresholds.sample_rows else snap
    return distances, full, small.get_html_str(as_iframe=False)


def _sid_frame(sids: np.ndarray) -> pd.DataFrame:
    # strings: categorical values, never mistaken for numbers
    return pd.DataFrame({f"sid_{l}": sids[:, l].astype(str) for l in range(sids.shape[1])})


def _level_report(distances: dict[str, float], churn: list[float] | None, n_levels: int,
                  thresholds: DriftThresholds) -> dict:
    out = {}
    for l in range(n_levels):
        d = distances.get(f"sid_{l}", 0.0)
        entry = {"distance": d, "drifted": bool(d > thresholds.level_distance)}
        if churn is not None:
            entry["churn"] = churn[l] if l < len(churn) else 0.0
        out[f"sid_{l}"] = entry
    return out


def compare_tokenizers(reference: SIDState, current: SIDState, thresholds: DriftThresholds | dict | None = None) -> DriftResult:
    """Two tokenizer versions on the same catalogue (items matched by id)."""
    t = _thresholds(thresholds)
    churn = sid_churn(reference, current)
    ref_index = reference.index()
    rows = [(ref_index[i], k) for k, i in enumerate(current.item_ids) if i in ref_index]
    r, c = (np.asarray(x) for x in zip(*rows)) if rows else (np.zeros(0, int), np.zeros(0, int))
    n_levels = min(reference.sids.shape[1], current.sids.shape[1])
    distances, full, page = _evidently_section(_sid_frame(reference.sids[r][:, :n_levels]),
                                               _sid_frame(current.sids[c][:, :n_levels]),
                                               [f"sid_{l}" for l in range(n_levels)], [], t)
    per_level = _level_report(distances, churn["per_level"], n_levels, t)
    reasons = []
    if churn["whole"] > t.max_sid_churn:
        reasons.append(f"SID churn {churn['whole']:.1%} > {t.max_sid_churn:.1%}")
    drifted_share = np.mean([v["drifted"] for v in per_level.values()]) if per_level else 0.0
    if drifted_share > t.max_drifted_level_share:
        reasons.append(f"{drifted_share:.0%} of SID levels drifted (JS distance > {t.level_distance})")
    summary = {
        "mode": "tokenizers", "reference": reference.label, "current": current.label,
        "drift_detected": bool(reasons), "reasons": reasons,
        "sid_churn": churn["whole"], "kept_sids": churn["kept"], "n_common_items": churn["n_common"],
        "per_level": per_level,
        # label-free: do the two tables group the same items together, whatever their code labels?
        "agreement": prefix_agreement(reference.sids[r], current.sids[c]) if rows else {},
        "moved_examples": moved_items([current.item_ids[k] for k in c], reference.sids[r], current.sids[c]) if rows else [],
        "usage": {"reference": _usage(reference.sids), "current": _usage(current.sids)},
        "thresholds": t.model_dump(),
    }
    return DriftResult(summary, {"sid_levels": page} if page else {}, {"sid_levels": full} if full else {})


def compare_snapshots(reference: SIDState, current: SIDState, thresholds: DriftThresholds | dict | None = None) -> DriftResult:
    """One tokenizer over two snapshots: new vs existing items, content, demand, and SID stability."""
    t = _thresholds(thresholds)
    ref_index = reference.index()
    is_new = np.array([i not in ref_index for i in current.item_ids], bool)
    common = np.flatnonzero(~is_new)
    ref_rows = np.array([ref_index[current.item_ids[k]] for k in common], dtype=np.int64)
    n_levels = current.sids.shape[1]
    levels = [f"sid_{l}" for l in range(n_levels)]
    pages, jsons, reasons = {}, {}, []
    churn = sid_churn(reference, current)

    # 1. code distribution of the catalogue, and of new vs existing items
    cat_dist, full, page = _evidently_section(_sid_frame(reference.sids), _sid_frame(current.sids), levels, [], t)
    if page:
        pages["catalogue_codes"], jsons["catalogue_codes"] = page, full
    per_level = _level_report(cat_dist, churn["per_level"], n_levels, t)
    new_vs_existing = None
    if is_new.any() and (~is_new).any():
        nd, full, page = _evidently_section(_sid_frame(current.sids[~is_new]), _sid_frame(current.sids[is_new]), levels, [], t)
        if page:
            pages["new_vs_existing_codes"], jsons["new_vs_existing_codes"] = page, full
        new_vs_existing = {c: nd.get(c, 0.0) for c in levels}
        for c in levels:
            per_level[c]["new_vs_existing_distance"] = new_vs_existing[c]
        worst_level = max(new_vs_existing, key=new_vs_existing.get)
        worst = new_vs_existing[worst_level]
        p_value = permutation_p_value(current.sids[:, levels.index(worst_level)], is_new, worst,
                                      t.permutations, t.seed)
        for c in levels:
            per_level[c]["new_vs_existing_p_value"] = p_value if c == worst_level else None
        if worst > t.new_vs_existing_distance and p_value < t.alpha:
            reasons.append(f"new items land in other code regions than existing ones (JS distance {worst:.3f} > "
                           f"{t.new_vs_existing_distance} at {worst_level}, permutation p={p_value:.3g})")

    # 2. content embedding drift (principal components of the reference embedding)
    embedding = None
    if reference.embeddings is not None and current.embeddings is not None:
        k = min(t.embedding_components, reference.embeddings.shape[1], len(reference.item_ids))
        mean = reference.embeddings.mean(0)
        _, _, vt = np.linalg.svd(reference.embeddings - mean, full_matrices=False)
        comps = [f"pc_{j}" for j in range(k)]
        proj = lambda e: pd.DataFrame((e - mean) @ vt[:k].T, columns=comps)  # noqa: E731
        ed, full, page = _evidently_section(proj(reference.embeddings), proj(current.embeddings), [], comps, t)
        if page:
            pages["content_embedding"], jsons["content_embedding"] = page, full
        drifted = [c for c in comps if ed.get(c, 0.0) > t.embedding_distance]
        embedding = {"distance": {c: ed.get(c, 0.0) for c in comps}, "drifted_share": len(drifted) / max(k, 1)}
        if embedding["drifted_share"] > t.max_drifted_embedding_share:
            reasons.append(f"content embedding: {len(drifted)}/{k} components drifted "
                           f"(Wasserstein > {t.embedding_distance})")

    # 3. demand: interaction share per item, and per code of each level
    popularity = None
    if reference.interaction_counts is not None and current.interaction_counts is not None:
        items = sorted(set(reference.item_ids) | set(current.item_ids))
        pos = {i: k for k, i in enumerate(items)}
        def per_item(s: SIDState):
            v = np.zeros(len(items))
            v[[pos[i] for i in s.item_ids]] = s.interaction_counts
            return v
        size = int(max(reference.sids.max(), current.sids.max())) + 1
        per_code = {c: js_distance(_code_counts(reference.sids[:, l], reference.interaction_counts, size),
                                   _code_counts(current.sids[:, l], current.interaction_counts, size))
                    for l, c in enumerate(levels) if l < reference.sids.shape[1]}
        popularity = {"item_distance": js_distance(per_item(reference), per_item(current)), "per_level": per_code}
        for c, d in per_code.items():
            per_level[c]["demand_distance"] = d
        worst = max(per_code.values(), default=0.0)
        if worst > t.popularity_distance:
            reasons.append(f"demand shifted across SID codes (JS distance {worst:.3f} > {t.popularity_distance})")

    drifted_share = np.mean([v["drifted"] for v in per_level.values()])
    if drifted_share > t.max_drifted_level_share:
        reasons.append(f"{drifted_share:.0%} of SID levels drifted (JS distance > {t.level_distance})")
    if churn["whole"] > t.max_sid_churn:
        reasons.append(f"SID churn of existing items {churn['whole']:.1%} > {t.max_sid_churn:.1%}")
    summary = {
        "mode": "snapshots", "reference": reference.label, "current": current.label,
        "drift_detected": bool(reasons), "reasons": reasons,
        "sid_churn": churn["whole"], "kept_sids": churn["kept"], "n_common_items": churn["n_common"],
        "n_reference_items": len(reference.item_ids), "n_current_items": len(current.item_ids),
        "new_items": int(is_new.sum()), "new_item_share": float(is_new.mean()) if len(is_new) else 0.0,
        "per_level": per_level, "content_embedding": embedding, "popularity": popularity,
        "moved_examples": moved_items([current.item_ids[k] for k in common], reference.sids[ref_rows], current.sids[common]),
        "new_item_neighbours": None if current.embeddings is None else new_item_neighbours(
            current.item_ids, current.sids, current.embeddings, is_new),
        "usage": {"reference": _usage(reference.sids), "current": _usage(current.sids)},
        "thresholds": t.model_dump(),
    }
    return DriftResult(summary, pages, jsons)


def _thresholds(t) -> DriftThresholds:
    return t if isinstance(t, DriftThresholds) else DriftThresholds.model_validate(t or {})


def state_of(table, embeddings=None, views: list[str] | None = None, interactions=None, label: str = "") -> SIDState:
    """A SIDState from a SIDTable, optionally ItemEmbeddings (content views) and an interactions frame."""
    ids = table.frame["item_id"].to_list()
    emb = None
    if embeddings is not None:
        views = views or [v for v in ("text", "image") if v in embeddings.views] or list(embeddings.views)
        pos = {i: k for k, i in enumerate(embeddings.item_ids)}
        missing = [i for i in ids if i not in pos]
        if missing:
            raise ValueError(f"{len(missing)} items of the SID table have no embedding (e.g. {missing[:3]})")
        emb = embeddings.matrix(views)[[pos[i] for i in ids]]
    counts = None
    if interactions is not None:
        vc = dict(interactions.group_by("item_id").len().iter_rows())
        counts = np.array([vc.get(i, 0) for i in ids], float)
    return SIDState(ids, table.sids(), emb, counts, label)


def same_data(a: SIDState, b: SIDState) -> bool:
    """Whether two states describe the same catalogue and interactions (only the SIDs may differ)."""
    if a.item_ids != b.item_ids:
        pos = b.index()
        if set(a.item_ids) != set(pos):
            return False
        order = [pos[i] for i in a.item_ids]
        b = SIDState(a.item_ids, b.sids[order],
                     None if b.embeddings is None else b.embeddings[order],
                     None if b.interaction_counts is None else b.interaction_counts[order])
    for x, y in ((a.embeddings, b.embeddings), (a.interaction_counts, b.interaction_counts)):
        if (x is None) != (y is None) or (x is not None and not np.allclose(x, y, atol=1e-6)):
            return False
    return True
