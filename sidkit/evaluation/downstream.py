"""Downstream evaluation of a SID table: generative retrieval and discriminative ranking.

Both use the leave-one-out splits of the training run (training split only for fitting; the
validation item for early stopping of the generator; the test item for the reported numbers).
Popularity strata come from training interactions (``popularity_strata``: top 20% of items
head, bottom 50% tail, rest torso; items never seen in training are ``cold``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import numpy as np
import torch

from sidkit.data.splits import TEST, VALID, Splits
from sidkit.precision import cpu_isa, resolve
from sidkit.ranking.din import DIN, RankerConfig, evaluation_impressions, score, train_ranker
from sidkit.ranking.metrics import auc, gauc, per_user_auc
from sidkit.retrieval.generator import GeneratorConfig, SIDGenerator, SIDVocabulary, generate_ranked, train_generator
from sidkit.retrieval.metrics import popularity_strata, retrieval_metrics, target_ranks
from sidkit.sids.table import SIDTable

STRATA = ("head", "torso", "tail", "cold")
INTERVAL_KS = (10,)           # Recall/NDCG@K with a 95% bootstrap interval over users in every row
DEEP_KS = (20, 50, 100)       # reported where the beam is at least this wide (a beam of B finds <= ~B items)
# generator settings that change how a row is computed, not what it measures (precision), or that only add numbers
# and change none of the others (deep_beam_size: a second beam for the deep cut-offs)
EXECUTION_ONLY = ("precision", "deep_beam_size")
# settings added after protocols were pinned enter the hash only when set away from their default, so that adding
# one does not make every earlier row stale. A row measured before a setting existed ran with the behaviour its
# default keeps, except implicit_alignment_scope (multi-view SIDs only): MACRec rows before 2026-12-04 (see their
# commit) aligned "histories"
HASHED_WHEN_SET = ("implicit_alignment_scope", "sid_weights", "deep_beam_size")


def eval_config_sha256(retrieval: GeneratorConfig | dict, ranking: RankerConfig | dict) -> str:
    """SHA-256 of the resolved evaluation protocol: both configs validated (defaults filled in), canonical JSON.
    Two rows with the same hash were measured under the same protocol (data splits are the tokenizer
    version's; the row names that version, and ``inputs_sha256`` the exact SIDs and splits).

    Execution settings (``EXECUTION_ONLY``: how the numbers are computed, not what is measured) are hashed
    at their defaults, so one protocol can run in fp32 on one CPU and bf16 on another; each row records
    the precision it resolved to, and BENCHMARKS.md compares the two on the same users. Settings added
    later (``HASHED_WHEN_SET``) are hashed only when set away from their default."""
    r = retrieval if isinstance(retrieval, GeneratorConfig) else GeneratorConfig.model_validate(retrieval)
    k = ranking if isinstance(ranking, RankerConfig) else RankerConfig.model_validate(ranking)
    r = r.model_copy(update={key: GeneratorConfig.model_fields[key].default for key in EXECUTION_ONLY})
    dumped = r.model_dump(mode="json")
    for key in HASHED_WHEN_SET:
        if dumped[key] == GeneratorConfig.model_fields[key].default:
            del dumped[key]
    text = json.dumps({"retrieval": dumped, "ranking": k.model_dump(mode="json")},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def inputs_sha256(item_ids: list[str], sids: np.ndarray, data: "IndexedSplits") -> str:
    """SHA-256 of what a row was measured on: the item ids with their SIDs, and the leave-one-out splits.
    Two rows with the same value saw byte-identical inputs, whichever machine or session made them."""
    h = hashlib.sha256()
    h.update(json.dumps(item_ids).encode())
    h.update(np.ascontiguousarray(sids, dtype=np.int64).tobytes())
    h.update(json.dumps([data.train, data.valid_hist, data.valid_tgt, data.test_hist, data.test_tgt]).encode())
    return h.hexdigest()


@dataclass
class IndexedSplits:
    """Splits expressed as 0-based rows of the SID table."""

    item_ids: list[str]
    train: list[list[int]]
    valid_hist: list[list[int]]
    valid_tgt: list[int]
    test_hist: list[list[int]]
    test_tgt: list[int]
    strata: list[str]  # per test user: stratum of the test target

    @classmethod
    def build(cls, table: SIDTable, splits: Splits) -> "IndexedSplits":
        ids = table.frame["item_id"].to_list()
        index = {item: i for i, item in enumerate(ids)}
        unknown = set(splits.interactions["item_id"].unique().to_list()) - set(index)
        if unknown:
            raise ValueError(f"{len(unknown)} interacted items have no SID (e.g. {sorted(unknown)[:3]}); "
                             "the SID table and the splits come from different catalogues")
        train = [[index[i] for i in s] for s in splits.train_sequences().values()]
        v = splits.examples(VALID)
        t = splits.examples(TEST)
        counts = splits.train_item_counts()
        strata_map = popularity_strata(counts)
        return cls(ids, train,
                   [[index[i] for i in h] for h in v["history"].to_list()], [index[i] for i in v["target"].to_list()],
                   [[index[i] for i in h] for h in t["history"].to_list()], [index[i] for i in t["target"].to_list()],
                   [strata_map.get(i, "cold") for i in t["target"].to_list()])


def _by_stratum(strata: np.ndarray, fn) -> dict[str, dict | None]:
    """``fn(mask)`` for each popularity stratum present in ``strata`` (one label per row), else None."""
    return {name: (fn(strata == name) if (strata == name).any() else None) for name in STRATA}


@dataclass
class PerUser:
    """Per test user results, for paired comparisons (sidkit.evaluation.ab)."""

    strata: np.ndarray                    # stratum of the user's test target
    ranks: np.ndarray | None = None       # retrieval: 1-based rank of the target in the beam list, 0 = missed
    deep_ranks: np.ndarray | None = None  # retrieval: the same in the deep beam's list (deep_beam_size), if any
    view_ranks: dict[str, np.ndarray] | None = None  # retrieval, multi-view SIDs: the same per view's beams alone
    auc: np.ndarray | None = None         # ranking: the user's AUC over its impressions (NaN: one class)
    weight: np.ndarray | None = None      # ranking: the user's number of impressions (GAUC weight)


def sid_views(table: SIDTable, mode: str = "auto") -> list[list[int]] | None:
    """SID positions per view for multi-view generation, or None (one view, the whole SID).

    ``auto``: a MACRec SID is its branches' codes side by side (``levels`` positions per expert,
    in the order of ``info["experts"]``), read as one view per branch; trailing disambiguation
    tokens (``append_token``) belong to no view. Other methods' SIDs are one view (MMQ's experts
    are shared and specific parts of one code, not alternative views of the item)."""
    experts = table.info.get("experts") or []
    if mode == "joint" or table.method != "macrec" or len(experts) < 2:
        return None
    levels = int(table.info["levels"])
    return [list(range(e * levels, (e + 1) * levels)) for e in range(len(experts))]


def view_names(table: SIDTable, n_views: int) -> list[str]:
    """A name per view of a multi-view SID: its branch's view(s) from ``info["experts"]`` (``text(text)`` ->
    ``text``), else ``view<i>``."""
    experts = table.info.get("experts") or []
    names = [e.split("(", 1)[1].rstrip(")") if "(" in e else e for e in experts[:n_views]]
    return names if len(names) == n_views and len(set(names)) == n_views else [f"view{v}" for v in range(n_views)]


def sid_weights(table: SIDTable) -> np.ndarray | None:
    """Per-item weights of the SID positions (items x positions; ADA-SID's router, the table's ``weight_<p>``
    columns; 1 for a position without one), or None when the table has none."""
    cols = sorted((c for c in table.frame.columns if c.startswith("weight_")), key=lambda c: int(c.split("_")[1]))
    if not cols:
        return None
    weights = np.ones((table.frame.height, len(table.sid_columns)), np.float32)
    for c in cols:
        weights[:, int(c.split("_")[1])] = table.frame[c].to_numpy()
    return weights


def evaluate_retrieval(table: SIDTable, splits: Splits, cfg: GeneratorConfig | dict, on_epoch=None,
                       per_user: list | None = None) -> tuple[dict, SIDGenerator, SIDVocabulary, list[dict]]:
    """Train the generator, rank the test targets; ``per_user`` (a list) receives a PerUser."""
    cfg = cfg if isinstance(cfg, GeneratorConfig) else GeneratorConfig.model_validate(cfg)
    data = IndexedSplits.build(table, splits)
    sids = table.sids()
    views = sid_views(table, cfg.views)
    t0 = time.perf_counter()
    model, vocab, history = train_generator(data.train, sids, cfg, valid=(data.valid_hist, data.valid_tgt),
                                            on_epoch=on_epoch, views=views, weights=sid_weights(table))
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    single: dict[int, list[list[int]]] | None = {} if views and cfg.ensemble_bonus is not None else None
    ranked = generate_ranked(model, vocab, sids, data.test_hist, cfg, views, single_view=single)
    ranks = target_ranks(ranked, data.test_tgt)
    ks = (1, 5, 10) + tuple(k for k in DEEP_KS if k <= cfg.beam_size)
    metrics = retrieval_metrics(ranks, ks, intervals=INTERVAL_KS)
    view_ranks = None
    if single:   # the dual-view ensemble ran: each view's own ranking is its "no ensemble" ablation
        names = view_names(table, len(views))
        view_ranks = {names[v]: target_ranks(r, data.test_tgt) for v, r in sorted(single.items())}
        metrics["single_view"] = {n: retrieval_metrics(r, ks, intervals=INTERVAL_KS) for n, r in view_ranks.items()}
    metrics["by_popularity"] = _by_stratum(np.asarray(data.strata), lambda m: retrieval_metrics(ranks[m], ks))
    metrics["train_seconds"] = train_s
    metrics["eval_seconds"] = time.perf_counter() - t0
    metrics["test_users_per_second"] = len(data.test_hist) / max(metrics["eval_seconds"], 1e-9)
    metrics["valid_seconds"] = sum(r.get("valid_seconds", 0.0) for r in history)
    metrics["precision"], metrics["isa"], metrics["threads"] = resolve(cfg.precision), cpu_isa(), torch.get_num_threads()
    metrics["epochs"] = len(history)
    metrics["views"] = views
    metrics["inputs_sha256"] = inputs_sha256(data.item_ids, sids, data)
    deep_ranks = None
    if cfg.deep_beam_size and cfg.deep_beam_size > cfg.beam_size:
        t0 = time.perf_counter()
        deep = generate_ranked(model, vocab, sids, data.test_hist, cfg.model_copy(update={"beam_size": cfg.deep_beam_size}),
                               views)
        deep_ranks = target_ranks(deep, data.test_tgt)
        deep_ks = tuple(k for k in DEEP_KS if cfg.beam_size < k <= cfg.deep_beam_size)
        deep_metrics = retrieval_metrics(deep_ranks, deep_ks, intervals=deep_ks)
        del deep_metrics["n_users"]
        metrics.update(deep_metrics)
        metrics["deep_beam_size"] = cfg.deep_beam_size
        metrics["deep_eval_seconds"] = time.perf_counter() - t0
    if per_user is not None:
        per_user.append(PerUser(np.asarray(data.strata), ranks=ranks, deep_ranks=deep_ranks, view_ranks=view_ranks))
    return metrics, model.cpu(), vocab, history


def evaluate_ranking(table: SIDTable, splits: Splits, cfg: RankerConfig | dict,
                     per_user: list | None = None) -> tuple[dict, DIN]:
    """Train the DIN ranker, score held-out impressions; ``per_user`` (a list) receives a PerUser."""
    cfg = cfg if isinstance(cfg, RankerConfig) else RankerConfig.model_validate(cfg)
    data = IndexedSplits.build(table, splits)
    weights = sid_weights(table) if cfg.features.endswith("sid_weighted") else None
    t0 = time.perf_counter()
    model, _ = train_ranker(data.train, len(data.item_ids), cfg, sids=table.sids(), weights=weights)
    train_s = time.perf_counter() - t0
    users, hist, cand, labels = evaluation_impressions(data.test_hist, data.test_tgt, len(data.item_ids), cfg)
    scores = score(model, hist, cand, users)
    g, kept = gauc(users, labels, scores)
    user_stratum = np.asarray(data.strata)[users]

    def stratum(mask):
        gs, k = gauc(users[mask], labels[mask], scores[mask])
        return {"auc": auc(labels[mask], scores[mask]), "gauc": gs, "n_users": k}

    metrics = {"auc": auc(labels, scores), "gauc": g, "n_users": kept, "features": cfg.features,
               "by_popularity": _by_stratum(user_stratum, stratum),
               "seconds": time.perf_counter() - t0, "train_seconds": train_s}
    if per_user is not None:
        n = len(data.test_tgt)
        aucs, counts = np.full(n, np.nan), np.zeros(n)
        for u, (value, size) in per_user_auc(users, labels, scores).items():
            aucs[u], counts[u] = value, size
        per_user.append(PerUser(np.asarray(data.strata), auc=aucs, weight=counts))
    return metrics, model
