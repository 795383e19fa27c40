"""Ranking: AUC/GAUC by hand, and a DIN whose SID features generalise to items never clicked."""

import numpy as np
import pytest

from sidkit.errors import ConfigError
from sidkit.ranking.din import RankerConfig, evaluation_impressions, score, train_ranker
from sidkit.ranking.metrics import auc, gauc


def test_auc_hand_values_and_ties():
    assert auc([1, 0, 1, 0], [0.9, 0.1, 0.8, 0.3]) == pytest.approx(1.0)
    assert auc([1, 0, 1, 0], [0.1, 0.9, 0.8, 0.3]) == pytest.approx(0.25)  # of 4 (pos, neg) pairs only (.8, .3) is right
    assert auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert np.isnan(auc([1, 1], [0.2, 0.3]))


def test_gauc_weights_by_impressions_and_drops_one_class_users():
    users = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    labels = np.array([1, 0, 0, 0, 1, 0, 1, 1, 1])   # user 2 has only positives: dropped
    scores = np.array([0.9, 0.1, 0.2, 0.3, 0.2, 0.8, 0.5, 0.5, 0.5])
    value, kept = gauc(users, labels, scores)
    assert kept == 2
    assert value == pytest.approx((1.0 * 4 + 0.0 * 2) / 6)


@pytest.fixture(scope="module")
def clustered_behaviour():
    """Users like one cluster; SIDs encode the cluster; half of each cluster's items are never clicked."""
    rng = np.random.default_rng(0)
    n_items, n_clusters = 200, 10
    cluster = np.arange(n_items) % n_clusters
    sids = np.stack([cluster, np.arange(n_items) // n_clusters], 1)
    clicked = np.arange(n_items) < 100                      # items 100..199 never appear in training
    seqs, hist, tgt = [], [], []
    for _ in range(400):
        c = rng.integers(n_clusters)
        warm = np.flatnonzero((cluster == c) & clicked)
        cold = np.flatnonzero((cluster == c) & ~clicked)
        s = rng.choice(warm, size=8).tolist()
        seqs.append(s)
        hist.append(s)
        tgt.append(int(rng.choice(cold)))
    return n_items, sids, seqs, hist, tgt


def test_sid_features_rank_unseen_items_where_item_ids_cannot(clustered_behaviour):
    n_items, sids, seqs, hist, tgt = clustered_behaviour
    results = {}
    for features in ("id", "sid", "id+sid"):
        cfg = RankerConfig(features=features, epochs=4, dim=16, n_eval_negatives=20, batch_size=256)
        model, log = train_ranker(seqs, n_items, cfg, sids=sids)
        users, h, cand, labels = evaluation_impressions(hist, tgt, n_items, cfg)
        results[features] = auc(labels, score(model, h, cand))
        assert log[-1]["loss"] < log[0]["loss"]
    assert results["sid"] > 0.8 and results["sid"] > results["id"] + 0.2
    assert results["id+sid"] > results["id"] + 0.1


def test_feature_set_errors():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="id\\+sid_weighted"):    # rejected with the config, before any step
        RankerConfig(features="magic")
    with pytest.raises(ConfigError, match="SID table"):
        train_ranker([[0, 1]], 2, RankerConfig(features="sid"))
    for weighted in ("sid_weighted", "id+sid_weighted"):
        with pytest.raises(ConfigError, match="router"):
            train_ranker([[0, 1]], 2, RankerConfig(features=weighted), sids=np.array([[0], [1]]))


def test_sid_weighted_uses_the_weights(clustered_behaviour):
    n_items, sids, seqs, hist, tgt = clustered_behaviour
    w = np.ones((n_items, 2), np.float32)
    w[:, 1] = 0.0  # the router switches off the item-specific second position
    cfg = RankerConfig(features="sid_weighted", epochs=2, dim=8, n_eval_negatives=10)
    model, _ = train_ranker(seqs, n_items, cfg, sids=sids, weights=w)
    import torch

    a = model.rep(torch.tensor([1]))          # item 0
    b = model.rep(torch.tensor([1 + 10]))     # item 10: same cluster, other second code
    torch.testing.assert_close(a, b)          # weight 0 removes the difference
    # with the item ID beside it: the SID half is weighted alike, the ID half still tells the items apart
    both, _ = train_ranker(seqs, n_items, cfg.model_copy(update={"features": "id+sid_weighted"}), sids=sids, weights=w)
    a, b = both.rep(torch.tensor([1])), both.rep(torch.tensor([1 + 10]))
    torch.testing.assert_close(a[..., 8:], b[..., 8:])
    assert not torch.allclose(a[..., :8], b[..., :8])


def test_din_attention_split_by_linearity_equals_the_concatenated_unit():
    """DIN's attention unit reads [h, t, h - t, h * t]; the model evaluates its first layer split by
    linearity, with a candidate matrix sharing one history. Both must give the concatenated formula."""
    import torch

    from sidkit.ranking.din import DIN, ItemRepresentation

    torch.manual_seed(0)
    cfg = RankerConfig(features="id+sid", dim=8)
    sids = np.random.default_rng(0).integers(0, 5, (30, 3))
    model = DIN(ItemRepresentation(30, sids, None, cfg), cfg).eval()
    history = torch.tensor([[0, 0, 3, 7, 9], [0, 0, 0, 0, 0], [1, 2, 3, 4, 5]])   # the second user has none
    candidates = torch.tensor([[4, 11, 30], [5, 6, 7], [8, 9, 10]])

    def reference(hist, target):
        h, t = model.rep(hist), model.rep(target)
        te = t.unsqueeze(1).expand_as(h)
        s = model.att(torch.cat([h, te, h - te, h * te], -1)).squeeze(-1).masked_fill(hist == 0, float("-inf"))
        interest = (torch.softmax(s, 1).nan_to_num(0.0).unsqueeze(-1) * h).sum(1)
        return model.mlp(torch.cat([interest, t, interest * t], -1)).squeeze(-1)

    with torch.no_grad():
        grouped = model(history, candidates)
        for c in range(3):
            torch.testing.assert_close(grouped[:, c], reference(history, candidates[:, c]), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(model(history, candidates[:, c]), grouped[:, c], atol=1e-6, rtol=1e-6)


def test_scoring_grouped_by_user_equals_row_by_row_scoring(clustered_behaviour):
    n_items, sids, seqs, hist, tgt = clustered_behaviour
    cfg = RankerConfig(features="id+sid", epochs=1, n_eval_negatives=20)
    model, _ = train_ranker(seqs, n_items, cfg, sids=sids)
    hist, tgt = hist[:40], tgt[:40]
    users, h, cand, labels = evaluation_impressions(hist, tgt, n_items, cfg)
    assert (np.bincount(users) == 21).all() and labels.sum() == 40
    np.testing.assert_allclose(score(model, h, cand, users), score(model, h, cand), atol=1e-5)
