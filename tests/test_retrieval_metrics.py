"""Retrieval metrics by hand, their bootstrap intervals, popularity strata and the protocol hash."""

import numpy as np
import pytest

from sidkit.retrieval.metrics import (
    bootstrap_interval, ndcg_at_k, per_user_gains, popularity_strata, recall_at_k, retrieval_metrics, target_ranks,
)


def test_metrics_against_hand_computed_values():
    ranks = np.array([1, 3, 0, 11])
    assert recall_at_k(ranks, 1) == pytest.approx(0.25)
    assert recall_at_k(ranks, 5) == pytest.approx(0.5)
    assert recall_at_k(ranks, 10) == pytest.approx(0.5)
    assert ndcg_at_k(ranks, 5) == pytest.approx((1 + 1 / np.log2(4)) / 4)
    assert ndcg_at_k(ranks, 1) == pytest.approx(0.25)
    m = retrieval_metrics(ranks)
    assert m["n_users"] == 4 and set(m) == {"recall@1", "recall@5", "recall@10", "ndcg@5", "ndcg@10", "n_users"}
    assert target_ranks([["a", "b"], ["c"], []], ["b", "x", "y"]).tolist() == [2, 0, 0]


def test_bootstrap_intervals_cover_the_metric_and_shrink_with_more_users():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 30, 400)            # ranks, 0 = missed
    large = rng.integers(0, 30, 40_000)
    m = retrieval_metrics(small, intervals=(10,))
    for key in ("recall@10", "ndcg@10"):
        low, high = m[f"{key}_ci"]
        assert low < m[key] < high
    width = lambda r: np.subtract(*retrieval_metrics(r, intervals=(10,))["recall@10_ci"][::-1])  # noqa: E731
    assert width(large) < width(small) / 5     # ~1/sqrt(100) of the width
    # the percentile interval of a 0/1 mean is near the normal one: p +- 1.96 sqrt(p (1 - p) / n)
    p = recall_at_k(large, 10)
    low, high = bootstrap_interval(per_user_gains(large, 10, "recall"))
    half = 1.96 * np.sqrt(p * (1 - p) / len(large))
    assert abs((high - low) / 2 - half) < 0.15 * half
    assert bootstrap_interval(per_user_gains(small, 10, "ndcg")) == m["ndcg@10_ci"]   # seeded: repeatable


def test_eval_config_hash_names_the_resolved_protocol():
    from sidkit.evaluation.downstream import eval_config_sha256

    base = eval_config_sha256({"beam_size": 20}, {})
    assert base == eval_config_sha256({"beam_size": 20, "seed": 0}, {"seed": 0})     # defaults resolved
    assert base != eval_config_sha256({"beam_size": 30}, {})
    assert base != eval_config_sha256({"beam_size": 20}, {"epochs": 4})
    with pytest.raises(ValueError):
        eval_config_sha256({"beam_sise": 20}, {})                                      # typo: not a protocol
    # precision is how a row is computed, not what it measures: fp32 on one CPU, bf16 on another, one protocol
    assert base == eval_config_sha256({"beam_size": 20, "precision": "fp32"}, {})
    assert base == eval_config_sha256({"beam_size": 20, "precision": "bf16"}, {})
    # the deep beam only adds the deep cut-offs' numbers: rows with and without it share the protocol
    assert base == eval_config_sha256({"beam_size": 20, "deep_beam_size": 100}, {})
    # the hash of the shipped Beauty protocol is unchanged by that rule (rows measured before it still match)
    from sidkit.config import check_config_file

    p = check_config_file("configs/eval_beauty.yaml")["parameters"]
    assert eval_config_sha256(p["retrieval"], p["ranking"]).startswith("daf45d75da79")
    p = check_config_file("configs/eval_movielens.yaml")["parameters"]
    assert eval_config_sha256(p["retrieval"], p["ranking"]).startswith("d17f71c3b076")


def test_inputs_fingerprint_changes_with_any_sid_or_split():
    from sidkit.evaluation.downstream import IndexedSplits, inputs_sha256

    sids = np.array([[1, 2, 0], [1, 3, 0], [4, 2, 0]])
    data = IndexedSplits(item_ids=["a", "b", "c"], train=[[0, 1, 2]], valid_hist=[[0, 1]], valid_tgt=[2],
                         test_hist=[[1, 2]], test_tgt=[0], strata=["head"])
    base = inputs_sha256(data.item_ids, sids, data)
    assert base == inputs_sha256(list(data.item_ids), sids.copy(), data)          # a value, not an identity
    moved = sids.copy()
    moved[2, 1] = 3
    assert base != inputs_sha256(data.item_ids, moved, data)                      # one code of one item
    assert base != inputs_sha256(["a", "c", "b"], sids, data)                     # SIDs on other items
    other = IndexedSplits(**{**data.__dict__, "test_tgt": [1]})
    assert base != inputs_sha256(data.item_ids, sids, other)                      # another split


def test_popularity_strata_cut_points():
    counts = {f"i{k}": 10 - k for k in range(10)}
    s = popularity_strata(counts, head_share=0.2, tail_share=0.5)
    assert [s[f"i{k}"] for k in range(10)] == ["head"] * 2 + ["torso"] * 3 + ["tail"] * 5
