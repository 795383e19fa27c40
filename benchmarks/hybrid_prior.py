"""A labelled ensemble on stored downstream rows: the row's own trained SID generator (its ``sid_generator``
artifact) mixed with the last-3-items transition prior, p = (1 - w) p_gen + w p_prior over the beam's and the
prior's top-20 candidates (sidkit/retrieval/hybrid.py). w is chosen on the validation split (prior counted from
training sequences only); the test split is read once, with the chosen w. Not a SID method: it measures what the
generator adds to the transition baseline that beats it.

    python benchmarks/hybrid_prior.py --dataset beauty --eval-config configs/eval_beauty_e20.yaml \
        --methods rqkmeans [--table seeds_movielens] [--n-prior 20] [--valid-users 0] [--write]

Each row first re-runs the generator's beam on the test users and refuses to go on unless it reproduces the
stored row's per-user ranks exactly (the artifact loaded is the generator that row evaluated). Results:
benchmarks/results/hybrid_<table>.json and the BENCHMARKS.md block ``hybrid-<table>``, with 95% intervals and
paired bootstraps against the generator alone and against the transition baseline on the same users.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, git_rev, machine, now, save_json, update_block, wait_for_quiet  # noqa: E402
from benchmarks.row_comparisons import delta_text, interval, ranks_path, table_name  # noqa: E402
from sidkit.precision import cpu_isa  # noqa: E402

MODELS = {"beauty": "sidkit-tokenizer-beauty", "movielens": "sidkit-tokenizer-movielens"}
GRID = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
KS = (5, 10)


def row_inputs(dataset: str, row: dict):
    """The row's generator (rebuilt from its artifact), its retrieval config, SIDs and indexed splits."""
    from sidkit.settings import configure_environment

    configure_environment()
    from zenml.client import Client

    from pipelines.cli_support import output
    from sidkit.evaluation.downstream import IndexedSplits
    from sidkit.retrieval.config import GeneratorConfig, SIDVocabulary

    bundle = output(Client().get_pipeline_run(row["run_id"]), "evaluate_generative_retrieval", "sid_generator")
    views = bundle.info.get("views")
    if views and len(views) > 1:
        raise SystemExit(f"{row['method']}: a multi-view SID generator ({len(views)} views, MACRec) has one "
                         "probability per view; the ensemble takes single-view generators only")
    mv = Client().get_model_version(MODELS[dataset], row["model_version"])
    table = mv.get_artifact("sid_table").load()
    data = IndexedSplits.build(table, mv.get_artifact("splits").load())
    sids = table.sids()
    return bundle.build(), GeneratorConfig.model_validate(bundle.config), SIDVocabulary.from_sids(sids), sids, data


def ensemble_settings(n_prior: int, valid_users: int) -> dict:
    """Everything the ensemble's numbers depend on besides the base row (hashed into ``ensemble_sha256``)."""
    return {"prior": {"kind": "last-k transitions", "last": 3, "decay": 0.5, "test_adds_validation_pairs": True},
            "n_prior": n_prior, "weight_grid": list(GRID), "chosen_on": "validation recall@10",
            "valid_users": valid_users, "valid_sample_seed": 0}


def sha256_of(settings: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def metrics_of(ranked: list[list[int]], targets: list[int]) -> tuple[dict, "object"]:
    import numpy as np

    from sidkit.retrieval.metrics import retrieval_metrics, target_ranks

    ranks = np.asarray(target_ranks(ranked, targets))
    return retrieval_metrics(ranks, (1,) + KS, intervals=KS), ranks


def paired_r10(base, other) -> dict:
    import numpy as np

    from sidkit.evaluation.ab import paired_bootstrap
    from sidkit.retrieval.metrics import per_user_gains

    ones = np.ones(len(base))
    return paired_bootstrap((per_user_gains(base, 10, "recall"), ones), (per_user_gains(other, 10, "recall"), ones))


def hybrid_row(dataset: str, table: str, row: dict, n_prior: int, valid_users: int) -> dict:
    import numpy as np
    import torch

    from benchmarks.references import reference_rankings
    from sidkit.retrieval.hybrid import choose_weight, hybrid_candidates, mix
    from sidkit.retrieval.transitions import TransitionPrior

    model, cfg, vocab, sids, d = row_inputs(dataset, row)
    stored = np.load(ranks_path(table, row), allow_pickle=False)
    t0 = time.perf_counter()
    pick = np.arange(len(d.valid_hist))
    if valid_users and valid_users < len(pick):
        pick = np.sort(np.random.default_rng(0).choice(len(pick), valid_users, replace=False))
    valid_hist, valid_tgt = [d.valid_hist[i] for i in pick], [d.valid_tgt[i] for i in pick]
    valid = hybrid_candidates(model, vocab, sids, valid_hist, cfg, TransitionPrior(d.train, last=3, decay=0.5), n_prior)
    weight, curve = choose_weight(valid, valid_tgt, GRID)
    valid_seconds = time.perf_counter() - t0
    # test: the prior also counts each validation user's last transition, as the reference row does
    t0 = time.perf_counter()
    test_prior = TransitionPrior(d.train, [(h[-1], t) for h, t in zip(d.valid_hist, d.valid_tgt) if h], last=3, decay=0.5)
    test = hybrid_candidates(model, vocab, sids, d.test_hist, cfg, test_prior, n_prior)
    generator, gen_ranks = metrics_of([c.items[:c.n_beam].tolist() for c in test], d.test_tgt)
    if not np.array_equal(gen_ranks, stored):
        raise SystemExit(f"{row['method']}: the loaded generator's beam does not reproduce the stored ranks "
                         f"({int((gen_ranks != stored).sum())} of {len(stored)} users differ): not the evaluated model")
    hybrid, hyb_ranks = metrics_of(mix(test, weight), d.test_tgt)
    test_seconds = time.perf_counter() - t0
    refs = reference_rankings(d.train, d.valid_hist, d.valid_tgt, d.test_hist, cfg.exclude_history)
    name = next(k for k in refs if k.startswith("last-3"))
    transitions, trans_ranks = metrics_of(refs[name], d.test_tgt)
    strata = np.asarray(d.strata)
    # where each model finds the target, by the test item's training popularity (content SIDs should help the
    # tail, where transition counts are sparse)
    hits = {k: (r > 0) & (r <= 10) for k, r in (("generator", gen_ranks), ("transitions", trans_ranks),
                                                 ("hybrid", hyb_ranks))}
    by_popularity = {s: {"users": int((strata == s).sum()), **{k: float(h[strata == s].mean()) for k, h in hits.items()}}
                     for s in ("head", "torso", "tail", "cold") if (strata == s).any()}
    settings = ensemble_settings(n_prior, valid_users)
    return {"method": row["method"], "model_version": row["model_version"], "run_id": row["run_id"],
            "ensemble_settings": settings, "ensemble_sha256": sha256_of(settings),
            "eval_config_sha256": row.get("eval_config_sha256"), "inputs_sha256": row.get("retrieval", {}).get("inputs_sha256"),
            "n_prior": n_prior, "valid_users": len(pick), "weight": weight, "valid_recall10_by_weight": curve,
            "hybrid": hybrid, "generator": generator, "transitions": transitions, "transitions_row": name,
            "hybrid_vs_generator": paired_r10(gen_ranks, hyb_ranks),
            "hybrid_vs_transitions": paired_r10(trans_ranks, hyb_ranks),
            "generator_vs_transitions": paired_r10(trans_ranks, gen_ranks), "recall10_by_popularity": by_popularity,
            "candidates_per_user": float(np.mean([len(c.items) for c in test])),
            "prior_hit_users": float(np.mean([c.prior.sum() > 0 for c in test])),
            "valid_seconds": valid_seconds, "test_seconds": test_seconds, "measured_at": now(), "commit": git_rev(),
            "machine": machine(), "isa": cpu_isa(), "threads": torch.get_num_threads(),
            "load_average_1min_end": round(os.getloadavg()[0], 2)}


def render(table: str, rows: dict[str, dict]) -> str:
    lines = [f"### Generator + transition prior (labelled ensemble), `{table}` rows",
             "",
             "p = (1 - w) p_gen + w p_prior over the beam's and the prior's top-20 (sidkit/retrieval/hybrid.py); w "
             "chosen on validation R@10 (prior from training sequences only), test read once. Not a SID method. "
             "Generated by `benchmarks/hybrid_prior.py`.",
             "",
             "Ensemble settings (prior, n_prior, weight grid, validation users): `ensemble_settings` per row in the "
             "JSON, hashed as `ensemble_sha256`: "
             + (", ".join(sorted({f"`{r['ensemble_sha256'][:12]}`" for r in rows.values() if r.get("ensemble_sha256")}))
                or "-") + ".",
             "",
             "| row | w | generator R@10 | transitions R@10 | generator vs transitions | ensemble R@10 | ensemble N@10 | "
             "ensemble vs generator | ensemble vs transitions | eval config | ISA · threads · load |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m, r in rows.items():
        lines.append(f"| {m} (v{r['model_version']}) | {r['weight']:g} | {interval(r['generator'], 'recall@10')} | "
                     f"{interval(r['transitions'], 'recall@10')} | {delta_text(r['generator_vs_transitions'])} | "
                     f"{interval(r['hybrid'], 'recall@10')} | "
                     f"{interval(r['hybrid'], 'ndcg@10')} | {delta_text(r['hybrid_vs_generator'])} | "
                     f"{delta_text(r['hybrid_vs_transitions'])} | {str(r['eval_config_sha256'])[:12]} | "
                     f"{r['isa']} · {r['threads']} · {r['load_average_1min_end']} |")
    strata = "; ".join(f"{m}: " + ", ".join(f"{s} ({v['users']} users) {v['generator']:.4f} / {v['transitions']:.4f} / "
                                           f"{v['hybrid']:.4f}" for s, v in r["recall10_by_popularity"].items())
                       for m, r in rows.items())
    curves = "; ".join(f"{m}: " + ", ".join(f"{float(w):g}→{v:.4f}" for w, v in r["valid_recall10_by_weight"].items())
                       for m, r in rows.items())
    lines += ["", f"R@10 by the test item's popularity, generator / transitions / ensemble: {strata}.",
              "", f"Validation R@10 by w: {curves}."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", choices=sorted(MODELS), default="beauty")
    ap.add_argument("--eval-config", default=None, help="the table's eval config (default configs/eval_<dataset>.yaml)")
    ap.add_argument("--table", default=None, help="the results file's name instead (e.g. seeds_movielens)")
    ap.add_argument("--methods", nargs="+", required=True, help="stored rows of that table (their run's generator)")
    ap.add_argument("--n-prior", type=int, default=20, help="the prior's top items added to the beam's candidates")
    ap.add_argument("--valid-users", type=int, default=0, help="validation users to choose w on (0 = all)")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    table = args.table or table_name(args.eval_config or f"configs/eval_{args.dataset}.yaml")
    runs = {r["method"]: r for r in json.loads((ROOT / "benchmarks" / "results" / f"{table}.json").read_text())["runs"]}
    path = ROOT / "benchmarks" / "results" / f"hybrid_{table}.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else {}
    for method in args.methods:
        if method not in runs or not runs[method].get("run_id"):
            raise SystemExit(f"{table}: no stored row {method!r} with a run id (rows: {sorted(runs)})")
        load, quiet = wait_for_quiet()
        row = hybrid_row(args.dataset, table, runs[method], args.n_prior, args.valid_users)
        row.update(load_average_1min_start=load, contended=not quiet)
        rows[method] = row
        print(json.dumps({k: row[k] for k in ("method", "weight", "valid_seconds", "test_seconds")}),
              f"R@10 generator {row['generator']['recall@10']:.4f} transitions {row['transitions']['recall@10']:.4f} "
              f"ensemble {row['hybrid']['recall@10']:.4f}", flush=True)
    if args.write:
        save_json(f"hybrid_{table}", {"rows": rows})
        update_block(f"hybrid-{table}", render(table, rows))
    print(render(table, rows))


if __name__ == "__main__":
    main()
