"""Downstream table: generative retrieval (R@5/R@10/N@5/N@10) and ranking (AUC/GAUC) per tokenizer.

For each tokenizer method it evaluates the latest registered model version of the dataset's
model (trained by `python run.py train --config configs/train_<dataset>_<method>.yaml`) with
`python run.py evaluate --config <eval config> --model-version V` in a fresh process, as a user
would, and tabulates the metrics next to the published numbers with the wall time of each run.
Results merge into benchmarks/results/downstream_<dataset>.json, so methods can be run one at a
time (each full Beauty run takes tens of minutes here).

    python benchmarks/downstream_table.py --dataset beauty --eval-config configs/eval_beauty.yaml \
        [--methods rqvae rqkmeans ...] [--sasrec-reference] [--paired-with configs/eval_beauty.yaml] [--write]

Every row records `eval_config_sha256` (the resolved retrieval + ranking configs): the table shows only
rows measured under the eval config given now; rows under another protocol are listed as stale, to be
re-run, never mixed in. Per-user test ranks go to benchmarks/results/ranks/ (npy), so each row gets a 95%
bootstrap interval and a paired difference to RQ-VAE on the same users (p-value, paired bootstrap).

`--sasrec-reference` also trains an item-ID SASRec (full-softmax CE) on the same splits, a calibration
row next to the published SASRec (R@10 0.0605 on Beauty in the TIGER paper).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, git_rev, machine, now, save_json, update_block, wait_for_quiet  # noqa: E402
from benchmarks.references import reference_baselines, sasrec_reference  # noqa: E402
from benchmarks.row_comparisons import (  # noqa: E402
    against,
    aucs_path,
    delta_text,
    hosts,
    interval,
    paired,
    paired_gauc,
    ranks_path,
    reruns,
    table_name,
    variants,
    where,
)
from sidkit.precision import cpu_isa  # noqa: E402

METHODS = ["rqvae", "rqkmeans", "mmq", "adasid", "macrec"]
# rows measured before commit 43e7737 (no "embedding_cache_fixed" in the row): their tokenizers may have been
# trained on text vectors a warm embedding cache had shifted onto other items (BENCHMARKS.md, cache audit)
UNVERIFIED = ("measured before the embedding-cache fix (43e7737): the tokenizer may have been trained on text vectors "
              "that a warm cache had shifted onto other items; unverified until re-run (see the cache audit)")
MODELS = {"beauty": "sidkit-tokenizer-beauty", "movielens": "sidkit-tokenizer-movielens"}
PUBLISHED = {  # ../shared/docs/methods.md: Amazon Beauty, R@5 / R@10 / N@5 / N@10
    "beauty": [("TIGER (paper)", 0.0454, 0.0648, 0.0321, 0.0384),
               ("LETTER-TIGER (paper)", 0.0431, 0.0672, 0.0286, 0.0364)],
}


def row_name(method: str, tags: list[str], dataset: str) -> str:
    """A model version's row: its method, or ``method:variant`` for a version tagged ``ablation`` (the configs in
    configs/ablations/ tag it with the variant's name, e.g. ``mmq:no_stage2``), so that an ablation never
    stands in for its full method."""
    if "ablation" not in tags:
        return method
    variant = sorted(t for t in tags if t not in {"ablation", method, dataset})
    return f"{method}:{'+'.join(variant) or 'ablation'}"


def ordered(names) -> list[str]:
    """Row order: the methods, each followed by its variants (alphabetically)."""
    def key(name: str) -> tuple[int, str]:
        method = name.split(":")[0]
        return (METHODS.index(method) if method in METHODS else len(METHODS), name)

    return sorted(names, key=key)


def latest_versions(model: str) -> dict[str, str]:
    """row name (``row_name``) -> latest *complete* model version whose metadata says it was trained with that
    method (a run that failed at its last step leaves a version with tokenizer metadata but no published
    artifacts: skipped)."""
    from sidkit.settings import configure_environment

    configure_environment()
    from zenml.client import Client

    from pipelines.model_versions import is_complete

    out: dict[str, tuple[int, str]] = {}
    for mv in Client().list_model_versions(model, size=100).items:
        if not is_complete(mv):
            continue
        tok = mv.run_metadata.get("tokenizer")
        method = tok.get("method") if isinstance(tok, dict) else None
        if not method:
            continue
        name = row_name(method, [t.name for t in mv.tags], model.rsplit("-", 1)[-1])
        if int(mv.number) > out.get(name, (-1, ""))[0]:
            out[name] = (int(mv.number), str(mv.name))
    return {m: v for m, (_, v) in out.items()}


def train_config(dataset: str, method: str) -> str:
    """The training config of a row: ``configs/train_<dataset>_<method>.yaml``, or for ``method:variant`` the
    ablation's ``configs/ablations/train_<dataset>_<method>_<variant>.yaml``."""
    base, _, variant = method.partition(":")
    return (f"configs/ablations/train_{dataset}_{base}_{variant}.yaml" if variant
            else f"configs/train_{dataset}_{method}.yaml")


def current_eval_sha(eval_config: str) -> str:
    """The protocol hash of an eval config file, as run.py evaluate would record it."""
    from sidkit.config import check_config_file
    from sidkit.evaluation.downstream import eval_config_sha256

    params = check_config_file(ROOT / eval_config).get("parameters") or {}
    return eval_config_sha256(params.get("retrieval") or {}, params.get("ranking") or {})


def excludes_history(eval_config: str) -> bool:
    """The protocol's ``retrieval.exclude_history``: the reference baselines follow it as the generators do."""
    from sidkit.config import check_config_file

    params = check_config_file(ROOT / eval_config).get("parameters") or {}
    return bool((params.get("retrieval") or {}).get("exclude_history", False))


def sasrec_rows(dataset: str, protocol_excludes_history: bool) -> list[str]:
    """The item-ID SASRec references stored for ``dataset``: the fixed-setting one (``--sasrec-reference``) and the
    one whose setting benchmarks/sasrec_tuning.py chose on validation, each labelled with its history rule."""
    results = ROOT / "benchmarks" / "results"
    found = []
    if (results / f"sasrec_reference_{dataset}.json").exists():
        m = json.loads((results / f"sasrec_reference_{dataset}.json").read_text())
        found.append(("SASRec, item IDs, full-softmax CE", m, m))
    if (results / f"sasrec_tuning_{dataset}.json").exists():
        t = json.loads((results / f"sasrec_tuning_{dataset}.json").read_text())
        chosen = ", ".join(f"{k} {v}" for k, v in t["chosen"].items())
        found.append((f"SASRec, item IDs, full-softmax CE, setting chosen on validation ({chosen})", t["test"], t))
    lines = []
    for name, m, run in found:
        rule = ("history excluded" if m.get("exclude_history") else "history NOT excluded") + (
            "" if bool(m.get("exclude_history")) == protocol_excludes_history else ": not this protocol")
        lines.append(f"| {name} (same splits, {rule}; {run['measured_at']}) | | {m['recall@5']:.4f} | "
                     f"{m['recall@10']:.4f} | {m['ndcg@5']:.4f} | {m['ndcg@10']:.4f} | | | | | {m['epochs']} | "
                     f"{m['train_seconds'] / 60:.1f} min | | | | |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", choices=sorted(MODELS), default="beauty")
    ap.add_argument("--eval-config", default=None, help="default: configs/eval_<dataset>.yaml")
    ap.add_argument("--methods", nargs="*", default=METHODS,
                    help="rows to (re)run: methods, or method:variant for an ablation's model version (row_name); "
                         "none: only re-render the table; 'stale': the stored rows measured under another eval config")
    ap.add_argument("--sasrec-reference", action="store_true",
                    help="(re)train the item-ID SASRec reference row (~10-30 min); otherwise the stored one is shown")
    ap.add_argument("--allow-contended", action="store_true",
                    help="run (and mark the row) even if another heavy job keeps the load up; default: refuse")
    ap.add_argument("--paired-with", default=None, metavar="EVAL_CONFIG",
                    help="also compare each row with the same tokenizer version's row under this eval config")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    eval_config = args.eval_config or f"configs/eval_{args.dataset}.yaml"
    protocol = current_eval_sha(eval_config)
    versions = latest_versions(MODELS[args.dataset])
    results = table_name(eval_config)
    results_path = ROOT / "benchmarks" / "results" / f"{results}.json"
    def stored_runs() -> dict[str, dict]:
        return {r["method"]: r for r in (json.loads(results_path.read_text())["runs"] if results_path.exists() else [])}

    def stored_previous() -> list[dict]:
        return json.loads(results_path.read_text()).get("previous", []) if results_path.exists() else []

    merged = stored_runs()
    if args.sasrec_reference and versions:
        load_start = round(os.getloadavg()[0], 2)
        ref = sasrec_reference(MODELS[args.dataset], next(iter(versions.values())),
                               exclude_history=excludes_history(eval_config))
        ref.update(measured_at=now(), commit=git_rev(), machine=machine(), isa=cpu_isa(),
                   load_average_1min_start=load_start, load_average_1min_end=round(os.getloadavg()[0], 2))
        save_json(f"sasrec_reference_{args.dataset}", ref)
        print("SASRec reference", ref, flush=True)
    if args.methods == ["stale"]:
        args.methods = [m for m, r in merged.items() if r.get("eval_config_sha256") != protocol]
        print(f"re-running the rows measured under another protocol: {args.methods or 'none'}", flush=True)
    for method in args.methods:
        if method not in versions:
            print(f"{method}: no model version of {MODELS[args.dataset]} trained with it; run "
                  f"python run.py train --config {train_config(args.dataset, method)}", flush=True)
            continue
        s = evaluate_row(eval_config, versions[method], method, results, args.allow_contended)
        # re-read before saving: another instance (other --methods) may have finished a row meanwhile
        merged, previous = stored_runs(), stored_previous()
        if method in merged:  # a replaced row is kept (with its ranks), e.g. to compare precisions on the same users
            previous.append(merged[method])
        merged[method] = s
        r = s.get("retrieval", {})
        print(method, s.get("status"), f"{s['wall_seconds']:.0f}s", f"R@10 {r.get('recall@10', float('nan')):.4f}",
              s.get("error", ""), flush=True)
        save_json(results, {"date": now(), "machine": machine(),
                            "runs": [merged[m] for m in ordered(merged)], "previous": previous})
    stale = [merged[m] for m in ordered(merged) if merged[m].get("eval_config_sha256") != protocol]
    rows = [merged[m] for m in ordered(merged) if merged[m].get("eval_config_sha256") == protocol]
    lines = [f"### Downstream on {args.dataset} ({eval_config}): generative retrieval and ranking per tokenizer\n",
             f"Written {now()} on {machine()}; the rows were measured on {hosts(rows)} (per row: the last "
             f"column) · `python benchmarks/downstream_table.py --dataset {args.dataset} --eval-config {eval_config} --write` · "
             f"each row: `run.py evaluate --config {eval_config}` on the latest model version of that method "
             f"(`measured_at`, `commit` per row in benchmarks/results/{results}.json). Protocol: "
             f"eval_config_sha256 `{protocol[:12]}`; every SID row below was measured under it. R@10 and N@10 with "
             "95% bootstrap intervals over test users; Δ R@10 vs RQ-VAE: paired bootstrap on the same users.\n",
             "| tokenizer | model version | R@5 | R@10 [95% CI] | N@5 | N@10 [95% CI] | Δ R@10 vs rqvae (p) | AUC | GAUC | "
             "Δ GAUC vs rqvae (p) | generator epochs | generator train | retrieval eval | ranking | wall | ISA · precision · load |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, *vals in PUBLISHED.get(args.dataset, []):
        lines.append(f"| {name} | | {' | '.join(f'{v:.4f}' for v in vals)} | | | | | | | | | |")
    if versions:
        for name, m in reference_baselines(MODELS[args.dataset], next(iter(versions.values())),
                                           excludes_history(eval_config)).items():
            lines.append(f"| {name} | | {m['recall@5']:.4f} | {m['recall@10']:.4f} | {m['ndcg@5']:.4f} | "
                         f"{m['ndcg@10']:.4f} | | | | | | | | | | |")
    lines += sasrec_rows(args.dataset, excludes_history(eval_config))
    for s in rows:
        if s.get("status") != "succeeded":
            lines.append(f"| {s['method']} | {s['model_version']} | failed: {str(s.get('error', ''))[:80]} ||||||||||||||")
            continue
        r, k = s["retrieval"], s["ranking"]
        mark = "" if s.get("embedding_cache_fixed") else " †"
        base = next((x for x in rows if x["method"] == "rqvae"), None)
        delta = delta_text(paired(results, base, s)) if base else "-"
        gauc_delta = delta_text(paired_gauc(base, s)) if base else "-"
        lines.append(f"| {s['method']}{mark} | {s['model_version']} | {r['recall@5']:.4f} | {interval(r, 'recall@10')} | "
                     f"{r['ndcg@5']:.4f} | {interval(r, 'ndcg@10')} | {delta} | {k['auc']:.4f} | {k['gauc']:.4f} | "
                     f"{gauc_delta} | {r['epochs']} | "
                     f"{r['train_seconds'] / 60:.1f} min | {r['eval_seconds'] / 60:.1f} min | "
                     f"{k['seconds'] / 60:.1f} min | {s['wall_seconds'] / 60:.1f} min | {where(s)} |")
    strata = ["", "Recall@10 by popularity of the test item (head = top 20% of items by training interactions, "
              "tail = bottom 50%):\n", "| tokenizer | head | torso | tail | cold | GAUC head | GAUC torso | GAUC tail |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in rows:
        if s.get("status") != "succeeded":
            continue
        bp, kp = s["retrieval"]["by_popularity"], s["ranking"]["by_popularity"]
        cell = lambda d, key: f"{d[key]:.4f}" if d and d.get(key) is not None else "-"  # noqa: E731
        strata.append(f"| {s['method']} | " + " | ".join(cell(bp.get(x), "recall@10") for x in ("head", "torso", "tail", "cold"))
                      + " | " + " | ".join(cell(kp.get(x), "gauc") for x in ("head", "torso", "tail")) + " |")
    if any(not s.get("embedding_cache_fixed") for s in rows):
        lines.append(f"\n† {UNVERIFIED}")
    if stale:
        lines.append("\nStale (measured under another eval config or before rows recorded one; re-run with "
                     "`--methods " + " ".join(s["method"] for s in stale) + "`): " + "; ".join(
                         f"{s['method']} v{s['model_version']} R@10 {s.get('retrieval', {}).get('recall@10', float('nan')):.4f} "
                         f"({s.get('eval_config_sha256', 'no hash')[:12]}, {s.get('measured_at', '?')})" for s in stale))
    paired_with = against(results, rows, args.paired_with) if args.paired_with else []
    table = "\n".join(lines + strata + deep_cutoffs(rows) + variants(results, rows) + reruns(results, rows, stored_previous())
                      + paired_with) + "\n"
    print(table)
    if args.write:
        update_block(results.replace("_", "-"), table)


def evaluate_row(eval_config: str, version: str, method: str, results: str, allow_contended: bool = False) -> dict:
    """One row: ``run.py evaluate`` on tokenizer model ``version`` in a fresh process, alone (waits for the load to
    settle; refuses a contended machine unless ``allow_contended``), its per-user ranks and AUCs saved under
    benchmarks/results/ranks/ as ``<results>_<method>_<run>.npy``; returns the run's summary with wall time, commit,
    machine, ISA and load. ``method`` is the row's label (a method, ``method:variant``, or ``method@seedN``)."""
    # the run's own output (per-epoch lines) goes to a log to follow while it runs (tail -f)
    log = ROOT / "benchmarks" / "logs" / f"{results}_{method.replace(':', '-')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"{method}: model version {version}, log {log.relative_to(ROOT)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, log.open("w") as log_file:
        out = Path(tmp) / "e.json"
        # --no-cache: a benchmark measures; ZenML's step cache keys on the config and the step's own source,
        # not on sidkit's code, so a cached run would return an older commit's result in 20 seconds
        cmd = [sys.executable, "run.py", "evaluate", "--config", eval_config, "--model-version", version,
               "--summary", str(out), "--no-cache"]
        load_start, quiet = wait_for_quiet()
        if not quiet and not allow_contended:
            raise SystemExit(f"load average {load_start} after 5 minutes: another heavy job is running; its "
                             "timings would be 5-8x off. Stop it, or pass --allow-contended (the row is marked)")
        # the code the run imports, read now: a commit made while it runs must not be credited with its result
        from pipelines.caching import code_fingerprint

        commit, code = git_rev(), code_fingerprint()
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, text=True,
                       env={**os.environ, "SIDKIT_PROGRESS": "0", "PYTHONUNBUFFERED": "1"})
        wall = time.perf_counter() - t
        s = json.loads(out.read_text()) if out.exists() else {"status": "no summary",
                                                              "error": log.read_text()[-800:]}
    aucs = s.get("ranking", {}).pop("test_aucs", None)
    weights = s.get("ranking", {}).pop("test_auc_weights", None)
    if aucs is not None and weights is not None:
        import numpy as np

        s["aucs_file"] = f"{results}_{method.replace(':', '-')}_{str(s.get('run_id', 'run'))[:8]}_auc.npy"
        values = np.array([np.nan if a is None else a for a in aucs], dtype=np.float64)
        np.save(aucs_path(s), np.stack([values, np.asarray(weights, dtype=np.float64)]), allow_pickle=False)
    ranks = s.get("retrieval", {}).pop("test_ranks", None)
    deep_ranks = s.get("retrieval", {}).pop("test_deep_ranks", None)
    view_ranks = s.get("retrieval", {}).pop("test_view_ranks", None)
    if ranks is not None:
        import numpy as np

        s["ranks_file"] = f"{results}_{method.replace(':', '-')}_{str(s.get('run_id', 'run'))[:8]}.npy"
        ranks_path(results, s).parent.mkdir(parents=True, exist_ok=True)
        np.save(ranks_path(results, s), np.asarray(ranks, dtype=np.int32), allow_pickle=False)
        if deep_ranks is not None:   # the deep beam's ranks (deep_beam_size), beside the protocol beam's
            s["deep_ranks_file"] = s["ranks_file"].replace(".npy", "_deep.npy")
            np.save(ranks_path(results, {"ranks_file": s["deep_ranks_file"]}), np.asarray(deep_ranks, dtype=np.int32),
                    allow_pickle=False)
        if view_ranks:   # multi-view SIDs: each view's beams alone, the "no ensemble" ablation on the same generator
            s["view_ranks_files"] = {v: s["ranks_file"].replace(".npy", f"_view-{v}.npy") for v in view_ranks}
            for v, f in s["view_ranks_files"].items():
                np.save(ranks_path(results, {"ranks_file": f}), np.asarray(view_ranks[v], dtype=np.int32),
                        allow_pickle=False)
    s.update({"method": method, "model_version": version, "wall_seconds": wall, "eval_config": eval_config,
              "measured_at": now(), "commit": commit, "code_sha256": code, "embedding_cache_fixed": True,
              "load_average_1min_start": load_start, "contended": not quiet, "load_average_1min_end": round(os.getloadavg()[0], 2),
              "machine": machine(), "isa": cpu_isa(),
              "precision": s.get("retrieval", {}).get("precision")})
    return s


def deep_cutoffs(rows: list[dict]) -> list[str]:
    """Recall/NDCG at 50 and 100 for the rows that ran the second, wider test beam (``deep_beam_size``)."""
    deep = [s for s in rows if s.get("status") == "succeeded" and s["retrieval"].get("deep_beam_size")]
    if not deep:
        return []
    out = ["", "Deep cut-offs (ADA-SID reports R@50/R@100): a second test beam of width `deep_beam_size` over the same "
           "trained generator; R@10 above stays from the protocol's beam. Rows without it predate the setting.\n",
           "| tokenizer | deep beam | R@50 [95% CI] | R@100 [95% CI] | N@50 | N@100 | deep beam time |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for s in deep:
        r = s["retrieval"]
        cell = lambda key: interval(r, key) if key in r else "-"  # noqa: E731
        num = lambda key: f"{r[key]:.4f}" if key in r else "-"  # noqa: E731
        out.append(f"| {s['method']} | {r['deep_beam_size']} | {cell('recall@50')} | {cell('recall@100')} | "
                   f"{num('ndcg@50')} | {num('ndcg@100')} | {r['deep_eval_seconds'] / 60:.1f} min |")
    return out


if __name__ == "__main__":
    main()
