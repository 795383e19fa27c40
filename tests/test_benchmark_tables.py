"""The downstream table's bookkeeping: a re-run keeps the row it replaced and is compared with it on the same users."""

import numpy as np
import pytest

import benchmarks.downstream_table as table
import benchmarks.references as references
import benchmarks.row_comparisons as rows_


def _row(method, run, recall, inputs, ranks_file, precision):
    return {"method": method, "model_version": "1", "status": "succeeded", "eval_config_sha256": "p" * 64,
            "measured_at": run, "isa": "AMX", "precision": precision, "ranks_file": ranks_file,
            "retrieval": {"recall@10": recall, "train_seconds": 600.0, "inputs_sha256": inputs}}


def test_a_rerun_is_compared_with_the_row_it_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(rows_, "ROOT", tmp_path)
    folder = tmp_path / "benchmarks" / "results" / "ranks"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    old = rng.integers(0, 30, 2000)                  # rank 0 = missed, else 1-based rank
    new = old.copy()
    new[:200] = 1                                    # 200 more users hit at rank 1
    np.save(folder / "t_rqkmeans_a.npy", old)
    np.save(folder / "t_rqkmeans_b.npy", new)
    before = _row("rqkmeans", "2026-12-01", 0.30, "x" * 64, "t_rqkmeans_a.npy", "fp32")
    after = _row("rqkmeans", "2026-12-02", 0.38, "x" * 64, "t_rqkmeans_b.npy", "bf16")
    lines = rows_.reruns("t", [after], [before])
    assert len(lines) == 5 and "| identical |" in lines[-1] and "fp32" in lines[-1]
    d = rows_.paired("t", before, after)
    assert d["lift"] > 0.05 and d["p_value"] < 0.01
    # another protocol is never compared; other inputs are named as such
    assert rows_.reruns("t", [after], [{**before, "eval_config_sha256": "q" * 64}]) == []
    other = {**before, "retrieval": {**before["retrieval"], "inputs_sha256": "y" * 64}}
    assert "| DIFFERENT |" in rows_.reruns("t", [after], [other])[-1]
    assert rows_.paired("t", after, after) is None   # a row against itself: nothing to compare


def test_a_row_is_paired_with_its_counterpart_under_another_eval_config(tmp_path, monkeypatch):
    """--paired-with: the same tokenizer version under another eval config (e.g. router weights on vs off),
    paired on the same users only where both rows hold the same SIDs and splits."""
    import json

    monkeypatch.setattr(rows_, "ROOT", tmp_path)
    folder = tmp_path / "benchmarks" / "results" / "ranks"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    off = rng.integers(0, 30, 2000)
    on = off.copy()
    on[:300] = 0                                     # 300 users lose their hit
    np.save(folder / "downstream_x_adasid_a.npy", off)
    np.save(folder / "downstream_x_router_adasid_b.npy", on)
    ranking = {"auc": 0.7, "gauc": 0.69}
    there = {**_row("adasid", "d1", 0.30, "x" * 64, "downstream_x_adasid_a.npy", "bf16"), "ranking": ranking}
    here = {**_row("adasid", "d2", 0.25, "x" * 64, "downstream_x_router_adasid_b.npy", "bf16"), "ranking": ranking}
    (tmp_path / "benchmarks" / "results" / "downstream_x.json").write_text(json.dumps({"runs": [there]}))
    lines = rows_.against("downstream_x_router", [here], "configs/eval_x.yaml")
    assert "(p 0.00" in lines[-1] and "| 0.3000 | 0.2500 | -0.0" in lines[-1]
    moved = {**here, "retrieval": {**here["retrieval"], "inputs_sha256": "y" * 64}}
    assert "other SIDs or splits" in rows_.against("downstream_x_router", [moved], "configs/eval_x.yaml")[-1]
    assert "no row here" in rows_.against("downstream_x_router", [here], "configs/eval_y.yaml")[-1].lower()


def test_an_ablation_is_its_own_row_and_is_paired_with_its_full_method(tmp_path, monkeypatch):
    """A model version tagged ``ablation`` never stands in for its method: it is ``method:variant``, ordered after
    the method, and compared with it on the same users."""
    assert table.row_name("mmq", ["movielens", "mmq"], "movielens") == "mmq"
    assert table.row_name("mmq", ["movielens", "mmq", "ablation", "no_stage2"], "movielens") == "mmq:no_stage2"
    assert table.ordered(["adasid", "mmq:no_stage2", "rqvae", "mmq", "adasid:no_router"]) == [
        "rqvae", "mmq", "mmq:no_stage2", "adasid", "adasid:no_router"]
    monkeypatch.setattr(rows_, "ROOT", tmp_path)
    folder = tmp_path / "benchmarks" / "results" / "ranks"
    folder.mkdir(parents=True)
    full = np.random.default_rng(2).integers(0, 30, 2000)
    ablated = full.copy()
    ablated[:400] = 0
    np.save(folder / "t_mmq_a.npy", full)
    np.save(folder / "t_mmq-no_stage2_b.npy", ablated)
    ranking = {"auc": 0.7, "gauc": 0.69}
    rows = [{**_row("mmq", "d1", 0.30, "x" * 64, "t_mmq_a.npy", "bf16"), "ranking": ranking},
            {**_row("mmq:no_stage2", "d2", 0.22, "y" * 64, "t_mmq-no_stage2_b.npy", "bf16"), "ranking": ranking}]
    lines = rows_.variants("t", rows)
    assert len(lines) == 5 and lines[-1].startswith("| mmq:no_stage2 v1 | mmq v1 |") and "(p 0.00" in lines[-1]


def test_a_multi_view_rows_single_views_are_its_no_ensemble_ablation(tmp_path, monkeypatch):
    """A MACRec row stores each view's own ranks (its beams alone); the table pairs each with the ensemble on the
    same users, as an ablation of the row's own generator."""
    monkeypatch.setattr(rows_, "ROOT", tmp_path)
    folder = tmp_path / "benchmarks" / "results" / "ranks"
    folder.mkdir(parents=True)
    ensemble = np.random.default_rng(3).integers(0, 30, 2000)
    text_only = ensemble.copy()
    text_only[:500] = 0                              # 500 users lose their hit without the image view's beams
    np.save(folder / "t_macrec_a.npy", ensemble)
    np.save(folder / "t_macrec_a_view-text.npy", text_only)
    np.save(folder / "t_macrec_a_view-image.npy", ensemble)
    row = {**_row("macrec", "d1", 0.30, "x" * 64, "t_macrec_a.npy", "fp32"), "ranking": {"auc": 0.7, "gauc": 0.69},
           "view_ranks_files": {"text": "t_macrec_a_view-text.npy", "image": "t_macrec_a_view-image.npy"}}
    row["retrieval"]["single_view"] = {"text": {"recall@10": 0.21}, "image": {"recall@10": 0.30}}
    lines = rows_.variants("t", [row])
    text = next(x for x in lines if "text view's beams only" in x)
    image = next(x for x in lines if "image view's beams only" in x)
    assert "| macrec v1 | 0.3000 | 0.2100 | -0.0" in text and "(p 0.00" in text
    assert "+0.0000" in image


def test_gauc_is_paired_on_the_same_users_from_stored_per_user_aucs(tmp_path, monkeypatch):
    monkeypatch.setattr(rows_, "ROOT", tmp_path)
    folder = tmp_path / "benchmarks" / "results" / "ranks"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    base = rng.uniform(0.5, 0.9, 3000)
    better = np.clip(base + 0.02, 0, 1)
    base[:10] = np.nan                                  # one-class users: no AUC, weight 0 in both
    weights = np.full(3000, 100.0)
    np.save(folder / "a_auc.npy", np.stack([base, weights]))
    np.save(folder / "b_auc.npy", np.stack([better, weights]))
    d = rows_.paired_gauc({"aucs_file": "a_auc.npy"}, {"aucs_file": "b_auc.npy"})
    assert d["lift"] == pytest.approx(0.02, abs=1e-3) and d["p_value"] < 0.01
    assert rows_.paired_gauc({}, {"aucs_file": "b_auc.npy"}) is None       # a row from before AUCs were stored


def test_reference_baselines_follow_the_protocols_history_exclusion():
    """The generators mask a user's history items when the protocol says exclude_history; the popularity and
    transition references must too, or they spend top-20 slots on items that can never be the target."""
    train = [[0, 1, 2], [0, 1, 3], [0, 1, 2], [4, 0, 1]]
    valid_hist, valid_tgt = [[0, 1]], [2]
    test_hist = [[2, 1]]                          # after 1 comes 2 (seen) or 3 (not seen)
    plain = references.reference_rankings(train, valid_hist, valid_tgt, test_hist)
    masked = references.reference_rankings(train, valid_hist, valid_tgt, test_hist, exclude_history=True)
    assert plain["last-3-items transitions (same splits)"][0][0] == 2
    follow = masked["last-3-items transitions (same splits, history excluded)"][0]
    popular = masked["most popular (same splits, history excluded)"][0]
    assert follow[0] == 3 and not {1, 2} & set(follow) and not {1, 2} & set(popular)
    assert plain["most popular (same splits)"][0][:2] == [0, 1]


def test_choosing_sasrec_settings_never_reads_the_test_split():
    """The tuning script fits while it chooses: the test histories are not touched; the chosen setting's own fit is
    then scored on test, and gives what training it again with the test would (same seed, same model)."""
    from tests.conftest import planted_walks

    _, users = planted_walks(40, 60, (6, 10))

    class Splits:
        item_ids = list(range(40))
        train = [u[:-2] for u in users]
        valid_hist, valid_tgt = [u[:-2] for u in users], [u[-2] for u in users]
        _test = ([u[:-1] for u in users], [u[-1] for u in users])

        @property
        def test_hist(self):
            raise AssertionError("the test split was read while choosing")

    settings = {**references.SASREC_REFERENCE, "dim": 8, "max_len": 6}
    chosen = references.train_sasrec_reference(Splits(), settings, epochs=5, test=False)
    assert "recall@10" not in chosen and chosen["settings"] == settings

    class WithTest(Splits):
        test_hist = property(lambda self: self._test[0])
        test_tgt = property(lambda self: self._test[1])

    tested = references.train_sasrec_reference(WithTest(), settings, epochs=5, test=True)
    assert tested["valid_recall10"] == chosen["valid_recall10"] and 0 <= tested["recall@10"] <= 1

    # what the tuning script does: fit while choosing (test untouched), then score the chosen fit on test once;
    # the same numbers as training that setting again with the test
    rank, record = references.fit_sasrec_reference(WithTest(), settings, epochs=5)
    assert record["valid_recall10"] == chosen["valid_recall10"]
    once = references.test_metrics(rank, WithTest())
    assert once["recall@10"] == tested["recall@10"] and once["ndcg@10"] == tested["ndcg@10"]


def test_the_seed_table_compares_methods_over_their_seeds(tmp_path, monkeypatch):
    """benchmarks/seed_spread.py: one line per method with each seed's R@10, the mean over seeds and the
    difference to RQ-VAE's mean (users paired, seeds resampled); the train config of an ablation is found."""
    import benchmarks.seed_spread as seeds

    monkeypatch.setattr(rows_, "ROOT", tmp_path)
    folder = tmp_path / "benchmarks" / "results" / "ranks"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    runs = []
    for method, boost in (("rqvae", 0), ("adasid", 400), ("adasid:no_router", 100)):
        for seed in (0, 1, 2):
            ranks = rng.integers(0, 40, 3000)
            ranks[:boost] = 1
            np.save(folder / f"s_{method}_{seed}.npy", ranks)
            hit = float(((ranks > 0) & (ranks <= 10)).mean())
            auc = np.clip(rng.normal(0.8 + (0.05 if method == "adasid" else 0.0), 0.1, 3000), 0, 1)
            auc[:5] = np.nan                                       # users without an AUC weigh nothing
            np.save(folder / f"s_{method}_{seed}_auc.npy", np.stack([auc, rng.integers(1, 5, 3000)]))
            runs.append({**_row(f"{method}@seed{seed}", "d", hit, "x" * 64, f"s_{method}_{seed}.npy", "fp32"),
                         "tokenizer_method": method, "tokenizer_seed": seed, "model_version": str(seed + 1),
                         "ranking": {"gauc": 0.8}, "aucs_file": f"s_{method}_{seed}_auc.npy"})
    runs[-1].update(isa="AVX2")                                     # one seed measured on another kind of host
    text = seeds.table("s", runs, "movielens", "configs/eval_movielens.yaml", "p" * 64)
    assert "the rows were measured on AMX · fp32, AVX2 · fp32" in text
    rqvae, adasid = [line for line in text.splitlines() if line.startswith(("| rqvae |", "| adasid |"))]
    assert rqvae.count("(s") == 3 and "| - |" in rqvae             # the baseline has no difference to itself
    lift = float(adasid.split(" | ")[6].split(" ")[0])
    assert lift > 0.05 and "(p 0.00" in adasid.split(" | ")[6]
    gauc = adasid.split(" | ")[9]                                   # ADA-SID's AUCs were drawn 0.05 higher
    assert 0.03 < float(gauc.split(" ")[0]) < 0.07 and "(p 0.00" in gauc
    ablation = [line for line in text.splitlines() if line.startswith("| adasid:no_router | adasid |")]
    assert len(ablation) == 1 and ablation[0].count("(s") == 3        # against ADA-SID, seed by seed
    assert adasid.endswith("| AMX · fp32 |")                          # one host: said once
    no_router = [line for line in text.splitlines() if line.startswith("| adasid:no_router | 3 |")][0]
    assert no_router.endswith("| s0 s1 AMX · fp32; s2 AVX2 · fp32 |")  # which seed ran where
    lift = float(ablation[0].split(" | ")[4].split(" ")[0])
    assert lift < -0.05 and "(p 0.00" in ablation[0].split(" | ")[4]
    assert float(ablation[0].split(" | ")[7].split(" ")[0]) < -0.03   # no_router's AUCs were drawn at the base's
    assert seeds.train_config("movielens", "adasid:no_router") == "configs/ablations/train_movielens_adasid_no_router.yaml"


def test_the_ensemble_table_renders_a_row_read_back_from_json():
    """hybrid_prior.py's table from its stored JSON (float weights come back as string keys)."""
    import json

    from benchmarks.hybrid_prior import render

    delta = {"lift": 0.01, "ci_low": -0.002, "ci_high": 0.02, "p_value": 0.2}
    metrics = {"recall@10": 0.15, "recall@10_ci": [0.13, 0.17], "ndcg@10": 0.08, "ndcg@10_ci": [0.07, 0.09]}
    row = {"model_version": "2", "weight": 0.3, "generator": metrics, "transitions": metrics, "hybrid": metrics,
           "generator_vs_transitions": delta, "hybrid_vs_generator": delta, "hybrid_vs_transitions": delta,
           "eval_config_sha256": "d17f71c3b076ff", "isa": "AVX2", "threads": 2, "load_average_1min_end": 1.1,
           "recall10_by_popularity": {"tail": {"users": 9, "generator": 0.1, "transitions": 0.05, "hybrid": 0.12}},
           "valid_recall10_by_weight": {0.0: 0.15, 0.3: 0.17}}
    md = render("seeds_movielens", json.loads(json.dumps({"rqvae@seed0": row})))
    assert "| rqvae@seed0 (v2) | 0.3 | 0.1500 [0.1300, 0.1700] |" in md
    assert "tail (9 users) 0.1000 / 0.0500 / 0.1200" in md and "0.3→0.1700" in md and "+0.0100 [-0.0020" in md


def test_the_table_shows_both_sasrec_references_with_their_history_rule(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(table, "ROOT", tmp_path)
    assert table.sasrec_rows("d", True) == []
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    metrics = {"recall@5": 0.04, "recall@10": 0.06, "ndcg@5": 0.03, "ndcg@10": 0.035, "epochs": 35, "train_seconds": 600}
    (results / "sasrec_reference_d.json").write_text(json.dumps({**metrics, "measured_at": "then"}))
    tuned = {**metrics, "recall@10": 0.0784, "exclude_history": True}
    (results / "sasrec_tuning_d.json").write_text(json.dumps({"chosen": {"max_len": 50, "block_dropout": 0.5},
                                                              "test": tuned, "measured_at": "now"}))
    fixed, chosen = table.sasrec_rows("d", True)
    assert "history NOT excluded: not this protocol; then" in fixed and "| 0.0600 |" in fixed
    assert "chosen on validation (max_len 50, block_dropout 0.5)" in chosen and "history excluded; now" in chosen
    assert "| 0.0784 |" in chosen and "not this protocol" not in chosen
    assert "not this protocol" in table.sasrec_rows("d", False)[1]


def test_the_downstream_table_header_names_every_host_its_rows_ran_on():
    """Rows are re-run one at a time, often on other machines: the header names them all, not only the writer's."""
    rows = [{"isa": "AMX", "precision": "bf16"}, {"isa": "AVX2", "precision": "fp32"},
            {"isa": "AMX", "precision": "bf16"}, {"status": "no summary"}]
    assert rows_.hosts(rows) == "- · -, AMX · bf16, AVX2 · fp32"
    assert rows_.hosts([]) == "-"
