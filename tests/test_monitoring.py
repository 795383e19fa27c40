"""SID drift monitoring (Evidently), the reports folder, and stable SIDs across retraining."""

import json

import numpy as np
import pytest

from sidkit.data.synthetic import SyntheticConfig, generate
from sidkit.features.embeddings import embed_catalogue
from sidkit.monitoring.drift import SIDState, compare_snapshots, compare_tokenizers, js_distance, state_of
from sidkit.monitoring.reports import publish_report
from sidkit.sids.stable import extend_sid_table
from sidkit.tokenizers.fit import assign_sids, fit_tokenizer

BASE = dict(n_items=240, n_users=400, n_clusters=6, with_images=False, seed=5)
FEATURES = {"text": {"enabled": True}, "image": {"enabled": False}, "behaviour": {"enabled": False}}
TOKENIZER = {"method": "rqkmeans", "input_views": ["text"], "levels": 3, "codebook_size": 16, "seed": 0}


@pytest.fixture(scope="module")
def snapshots():
    """A reference snapshot, a quiet next one (users resampled), and one with injected drift."""
    out = {}
    for name, extra in {"reference": {}, "quiet": {"user_seed": 11},
                        "drifted": {"new_items": 60, "popularity_shift": 0.7, "content_shift": 0.3}}.items():
        cat, _ = generate(SyntheticConfig(**BASE, **extra))
        out[name] = (cat, embed_catalogue(cat, None, FEATURES))
    tok, _ = fit_tokenizer(out["reference"][1], TOKENIZER)
    return out, tok


def _state(snap, tok, name, table=None):
    cat, emb = snap[name]
    table = table or assign_sids(tok, emb, "append_token")[0]
    return state_of(table, emb, ["text"], cat.interactions, label=name), table


def test_js_distance_by_hand():
    assert js_distance([1, 0], [1, 0]) == 0.0
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    # p = (1/2, 1/2), q = (1, 0): m = (3/4, 1/4); JS = 1/2 (KL(p||m) + KL(q||m))
    kl_p = 0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25)
    kl_q = np.log2(1 / 0.75)
    assert js_distance([1, 1], [2, 0]) == pytest.approx(np.sqrt((kl_p + kl_q) / 2))


def test_snapshot_drift_is_found_when_injected_and_quiet_without(snapshots, tmp_path):
    snap, tok = snapshots
    ref, _ = _state(snap, tok, "reference")
    quiet = compare_snapshots(ref, _state(snap, tok, "quiet")[0])
    assert not quiet.summary["drift_detected"], quiet.summary["reasons"]
    assert quiet.summary["sid_churn"] == 0.0 and quiet.summary["new_items"] == 0

    drifted = compare_snapshots(ref, _state(snap, tok, "drifted")[0])
    s = drifted.summary
    assert s["drift_detected"]
    assert s["new_items"] == 60
    reasons = " ".join(s["reasons"])
    assert "demand" in reasons           # popularity shift moved interactions across codes
    assert "churn" in reasons            # content shift changed existing items' SIDs
    assert s["per_level"]["sid_0"]["new_vs_existing_distance"] > 0.3   # new theme, new code region
    assert set(drifted.evidently_html) >= {"catalogue_codes", "new_vs_existing_codes", "content_embedding"}
    # where the 60 new items landed: most share their first code with their nearest existing item by content
    n = s["new_item_neighbours"]
    assert n["n_new"] == 60 and len(n["examples"]) == 10 and len(n["examples"][0]["neighbours"]) == 3
    assert 0.0 <= n["same_first_code"] <= 1.0
    assert s["moved_examples"] and all(e["reference"] != e["current"] for e in s["moved_examples"])

    # SID levels are categorical in Evidently, with a fixed method
    evj = json.dumps(drifted.evidently_json["catalogue_codes"])
    assert "ValueDrift(column=sid_0,method=jensenshannon" in evj

    page = publish_report(drifted, "drifted", tmp_path)
    publish_report(quiet, "quiet", tmp_path)
    index = (tmp_path / "index.html").read_text()
    assert index.count("<tr>") == 3 and "DRIFT" in index and "no drift" in index
    assert page.exists() and (page.parent / "catalogue_codes.html").stat().st_size < 8_000_000
    summary = json.loads((page.parent / "summary.json").read_text())
    assert summary["report_html"] == str(page.resolve())


def test_constant_columns_do_not_break_the_report():
    ids = [f"i{k}" for k in range(50)]
    ref = SIDState(ids, np.stack([np.zeros(50, int), np.arange(50) % 5], 1), label="ref")
    cur = SIDState(ids, np.stack([np.zeros(50, int), np.arange(50) % 5], 1), label="cur")
    res = compare_tokenizers(ref, cur)
    assert res.summary["per_level"]["sid_0"] == {"distance": 0.0, "drifted": False, "churn": 0.0}
    assert not res.summary["drift_detected"]


def test_tokenizer_comparison_reports_churn_per_level():
    ids = [f"i{k}" for k in range(400)]
    rng = np.random.default_rng(0)
    a = rng.integers(0, 8, (400, 3))
    b = a.copy()
    b[:100, 2] = (b[:100, 2] + 1) % 8                # 25% change at the last level only
    res = compare_tokenizers(SIDState(ids, a, label="v1"), SIDState(ids, b, label="v2"))
    s = res.summary
    assert s["sid_churn"] == pytest.approx(0.25)
    assert [s["per_level"][f"sid_{l}"]["churn"] for l in range(3)] == pytest.approx([0, 0, 0.25])
    assert s["drift_detected"] and "churn" in s["reasons"][0]
    # label-free agreement: the first two levels group the items identically, the full SID does not
    assert s["agreement"]["prefix_1"]["nmi"] == 1.0 and s["agreement"]["prefix_2"]["ari"] == 1.0
    assert s["agreement"]["prefix_3"]["nmi"] < 1.0
    assert len(s["moved_examples"]) == 10 and all(int(e["item_id"][1:]) < 100 for e in s["moved_examples"])
    assert "Do the two tables group items the same way?" in res.to_html() and s["moved_examples"][0]["item_id"] in res.to_html()


def test_agreement_is_blind_to_relabelling_and_matches_textbook_values():
    from sidkit.monitoring.agreement import partition_agreement

    rng = np.random.default_rng(1)
    a = rng.integers(0, 12, 600)
    assert partition_agreement(a, (a * 5 + 7) % 12) == {"nmi": 1.0, "ari": 1.0}      # codes renamed: same grouping
    # hand example: a = {0,0,1,1}, b = {0,0,0,1}: pairs together in both = 1, a: 2, b: 3, of 6 pairs
    # ARI = (1 - 2*3/6) / ((2+3)/2 - 2*3/6) = 0 / 1.5 = 0
    assert partition_agreement(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1]))["ari"] == pytest.approx(0.0)
    noisy = a.copy()
    noisy[:150] = rng.integers(0, 12, 150)
    got = partition_agreement(a, noisy)
    metrics = pytest.importorskip("sklearn.metrics")
    assert got["nmi"] == pytest.approx(metrics.normalized_mutual_info_score(a, noisy), abs=1e-6)
    assert got["ari"] == pytest.approx(metrics.adjusted_rand_score(a, noisy), abs=1e-6)
    assert partition_agreement(a, rng.integers(0, 12, 600))["ari"] < 0.02            # independent: ~chance


def test_append_mode_keeps_every_published_sid(snapshots):
    snap, tok = snapshots
    _, published = _state(snap, tok, "reference")
    cat, emb = snap["drifted"]                        # new items and rewritten texts
    table, stats = extend_sid_table(published, tok, emb)
    old = {i: tuple(s) for i, s in zip(published.frame["item_id"], published.sids().tolist())}
    new = {i: tuple(s) for i, s in zip(table.frame["item_id"], table.sids().tolist())}
    assert all(new[i] == old[i] for i in old)                     # 100% kept
    assert stats["kept_share"] == 1.0 and stats["new_items"] == 60
    assert len(set(new.values())) == len(new)                     # still unique
    # the same data assigned from scratch would have moved some items (content shift)
    fresh, _ = assign_sids(tok, emb, "append_token")
    fresh_map = {i: tuple(s) for i, s in zip(fresh.frame["item_id"], fresh.sids().tolist())}
    assert any(fresh_map[i] != old[i] for i in old)


def test_append_mode_with_relocate_policy_stays_unique(snapshots):
    snap, tok = snapshots
    _, emb = snap["reference"]
    published, _ = assign_sids(tok, emb, "relocate")
    table, stats = extend_sid_table(published, tok, snap["drifted"][1])
    sids = [tuple(s) for s in table.sids().tolist()]
    assert len(set(sids)) == len(sids) and stats["kept_share"] == 1.0
    assert table.sids().shape[1] == published.sids().shape[1]


def test_same_data_decides_the_auto_mode():
    from sidkit.monitoring.drift import same_data

    ids = ["a", "b", "c"]
    emb = np.eye(3)
    a = SIDState(ids, np.zeros((3, 2), int), emb, np.array([1.0, 2, 3]))
    assert same_data(a, SIDState(ids[::-1], np.ones((3, 2), int), emb[::-1], np.array([3.0, 2, 1])))  # reordered
    assert not same_data(a, SIDState(ids, np.zeros((3, 2), int), emb * 2, np.array([1.0, 2, 3])))     # content moved
    assert not same_data(a, SIDState(ids, np.zeros((3, 2), int), emb, np.array([1.0, 2, 4])))         # demand moved


def test_few_new_items_need_a_significant_difference():
    rng = np.random.default_rng(0)
    ref_ids = [f"i{k}" for k in range(1000)]
    ref = SIDState(ref_ids, rng.integers(0, 16, (1000, 1)), label="ref")
    same = SIDState(ref_ids + [f"n{k}" for k in range(20)],
                    np.r_[ref.sids, rng.integers(0, 16, (20, 1))], label="cur")   # 20 new items, same distribution
    s = compare_snapshots(ref, same).summary
    assert s["per_level"]["sid_0"]["new_vs_existing_distance"] > 0.35           # large by chance alone ...
    assert s["per_level"]["sid_0"]["new_vs_existing_p_value"] > 0.01          # ... and not significant
    assert not any("new items" in r for r in s["reasons"])
    other = SIDState(same.item_ids, np.r_[ref.sids, np.zeros((20, 1), int)], label="cur")  # all in one code
    s = compare_snapshots(ref, other).summary
    assert any("new items" in r for r in s["reasons"])
