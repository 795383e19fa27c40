"""A/B champion-vs-challenger: paired bootstrap by hand, and the decision on real models."""

import numpy as np
import pytest

from sidkit.data.splits import leave_one_out
from sidkit.data.synthetic import SyntheticConfig, generate
from sidkit.evaluation.ab import compare, paired_bootstrap
from sidkit.evaluation.downstream import PerUser, evaluate_ranking
from sidkit.sids.collisions import resolve_collisions
from sidkit.sids.table import build_sid_table


def test_bootstrap_of_identical_sides_finds_no_difference():
    v = (np.random.default_rng(0).random(200), np.ones(200))
    r = paired_bootstrap(v, v, n_bootstrap=200)
    assert r["lift"] == 0 and r["ci_low"] == 0 and r["ci_high"] == 0 and r["p_value"] == 1.0


def test_bootstrap_of_a_clear_win():
    n = 300
    champion = (np.zeros(n), np.ones(n))
    challenger = (np.r_[np.ones(60), np.zeros(n - 60)], np.ones(n))   # 20% hits vs 0%
    r = paired_bootstrap(champion, challenger, n_bootstrap=500, seed=1)
    assert r["lift"] == pytest.approx(0.2)
    assert 0.1 < r["ci_low"] < 0.2 < r["ci_high"] < 0.3
    assert r["p_value"] == pytest.approx(1 / 500)


def test_paired_comparison_needs_the_same_users():
    a = PerUser(np.array(["head"] * 3), ranks=np.array([1, 0, 2]))
    b = PerUser(np.array(["head"] * 4), ranks=np.array([1, 0, 2, 3]))
    with pytest.raises(ValueError, match="same users"):
        compare({"retrieval": a}, {"retrieval": b}, {"primary": "recall@10"})


def test_stratum_guard_blocks_a_win_that_hurts_the_tail():
    strata = np.array(["head"] * 200 + ["tail"] * 100)
    champ = PerUser(strata, ranks=np.r_[np.zeros(200, int), np.ones(100, int)])       # tail all hits
    chall = PerUser(strata, ranks=np.r_[np.ones(200, int), np.zeros(100, int)])       # head all hits, tail none
    res = compare({"retrieval": champ}, {"retrieval": chall}, {"primary": "recall@10", "n_bootstrap": 200})
    assert res["metrics"]["recall@10"]["lift"] > 0
    assert not res["decision"]["promote"] and "tail stratum" in res["decision"]["reason"]


@pytest.fixture(scope="module")
def ranking_setup():
    """Synthetic data with two SID tables: one that follows the latent clusters, one random."""
    cat, clusters = generate(SyntheticConfig(n_items=300, n_users=600, n_clusters=6, with_images=False, seed=2))
    splits = leave_one_out(cat.interactions)
    ids = cat.items["item_id"].to_list()
    rng = np.random.default_rng(0)
    informative = np.stack([clusters, rng.integers(0, 8, len(ids))], 1)   # level 1 = cluster
    random_codes = np.stack([rng.integers(0, 6, len(ids)), rng.integers(0, 8, len(ids))], 1)

    def table(codes):
        final = resolve_collisions(codes, None, "append_token")
        return build_sid_table(ids, codes, final, "test", [8, 8], "append_token")

    return splits, table(informative), table(random_codes)


@pytest.mark.slow
def test_truly_better_challenger_is_promoted_and_worse_is_not(ranking_setup):
    splits, good, bad = ranking_setup
    cfg = {"features": "sid", "epochs": 3, "n_eval_negatives": 49, "seed": 0}
    results = {}
    for name, table in {"good": good, "bad": bad}.items():
        per_user = []
        metrics, _ = evaluate_ranking(table, splits, cfg, per_user=per_user)
        results[name] = {"ranking": per_user[0]}
    rule = {"primary": "gauc", "n_bootstrap": 300, "min_stratum_users": 1000}
    better = compare(results["bad"], results["good"], rule)
    assert better["decision"]["promote"], better["decision"]
    m = better["metrics"]["gauc"]
    assert m["lift"] > 0.05 and m["ci_low"] > 0 and m["p_value"] < 0.05
    worse = compare(results["good"], results["bad"], rule)
    assert not worse["decision"]["promote"]
    assert worse["metrics"]["gauc"]["lift"] == pytest.approx(-m["lift"])


def test_seed_bootstrap_pairs_users_and_sees_the_spread_between_seeds():
    from sidkit.evaluation.seeds import seed_bootstrap

    rng = np.random.default_rng(1)
    n = 2000
    hits = [(rng.random(n) < 0.15).astype(float) for _ in range(3)]
    same = seed_bootstrap(hits, hits, n_bootstrap=500)
    assert same["lift"] == 0.0 and same["ci_low"] <= 0.0 <= same["ci_high"] and same["p_value"] > 0.2
    better = [np.maximum(h, (rng.random(n) < 0.1)) for h in hits]     # every seed hits where the base hits, and more
    d = seed_bootstrap(hits, better, n_bootstrap=500)
    assert d["lift"] > 0.05 and d["ci_low"] > 0 and d["p_value"] <= 0.01
    assert d["per_seed"] == [float(h.mean()) for h in hits] and len(d["other_per_seed"]) == 3

    # the same users and mean, but the seeds disagree: the interval of the mean must widen
    base = (rng.random(n) < 0.2).astype(float)
    steady = seed_bootstrap([base, base, base], n_bootstrap=500)
    spread = seed_bootstrap([np.where(rng.random(n) < f, 1.0, 0.0) for f in (0.1, 0.2, 0.3)], n_bootstrap=500)
    assert steady["seed_sd"] == 0.0 and spread["seed_sd"] > 0.05
    assert spread["ci_high"] - spread["ci_low"] > 2 * (steady["ci_high"] - steady["ci_low"])
    with pytest.raises(ValueError, match="same users"):
        seed_bootstrap(hits, [np.zeros(n - 1)])


def test_paired_seeds_cancel_a_seed_effect_shared_by_both_methods():
    """An ablation trained with the same seeds as its full method: seed s against seed s. When the seeds move
    both methods alike and the ablation loses a little on every seed, pairing the seeds finds the loss that
    resampling them independently drowns in the spread between seeds."""
    from sidkit.evaluation.seeds import seed_bootstrap

    rng = np.random.default_rng(3)
    n = 3000
    full = [(rng.random(n) < f).astype(float) for f in (0.10, 0.20, 0.30)]        # a large seed effect
    ablated = [np.where(rng.random(n) < 0.1, 0.0, h) for h in full]                  # drops 10% of each seed's hits
    independent = seed_bootstrap(full, ablated, n_bootstrap=1000)
    paired = seed_bootstrap(full, ablated, n_bootstrap=1000, paired_seeds=True)
    assert paired["lift"] == independent["lift"] < 0
    assert paired["ci_high"] < 0 and paired["p_value"] <= 0.01
    assert independent["ci_high"] > 0 and independent["p_value"] > 0.2
    with pytest.raises(ValueError, match="same number of seeds"):
        seed_bootstrap(full, ablated[:2], paired_seeds=True)
