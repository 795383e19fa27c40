"""Methods over training seeds: each tokenizer config trained with several seeds, each evaluated downstream.

A downstream row is one trained tokenizer; retraining the same config moves MovieLens R@10 by ~0.015, as much as
most gaps between methods. This script trains every (method, seed) with ``run.py train --set tokenizer.seed=S
--set features.seed=S`` (the tokenizer's and the behaviour model's seeds), evaluates the new model version with
``run.py evaluate`` under one pinned eval config (the generator and ranker keep that config's own seed, so the
eval protocol and its hash stay one), and tabulates per method the R@10 of each seed, their mean with a
two-level (seeds x users) bootstrap interval, and the difference to RQ-VAE's mean with its interval and p-value
(sidkit.evaluation.seeds).

    python benchmarks/seed_spread.py --dataset movielens --methods rqvae adasid --seeds 0 1 2 [--write]

Rows are kept in benchmarks/results/seeds_<dataset>.json (per-user ranks under results/ranks/); a (method, seed)
already measured under the current eval config is not re-run, so the script resumes after an interruption and
seeds can be added later. Methods may be ablations (``adasid:no_router`` -> configs/ablations/...).
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

from benchmarks.common import ROOT, machine, now, save_json, update_block, wait_for_quiet  # noqa: E402
from benchmarks.downstream_table import current_eval_sha, evaluate_row, train_config  # noqa: E402
from benchmarks.row_comparisons import host, hosts, ranks_path  # noqa: E402


def train(dataset: str, method: str, seed: int) -> dict:
    """Train one tokenizer with every training seed set to ``seed``; the run's summary plus wall time and load."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "t.json"
        cmd = [sys.executable, "run.py", "train", "--config", train_config(dataset, method), "--summary", str(out),
               "--set", f"tokenizer.seed={seed}", "--set", f"features.seed={seed}"]
        load_start, _ = wait_for_quiet(timeout=120.0)
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "SIDKIT_PROGRESS": "0"})
        wall = time.perf_counter() - t
        s = json.loads(out.read_text()) if out.exists() else {"status": "no summary", "error": proc.stderr[-800:]}
    s.update(train_wall_seconds=wall, train_load_average_1min_start=load_start)
    return s


def per_user(results: str, rows: list[dict], metric: str):
    import numpy as np

    from sidkit.retrieval.metrics import per_user_gains

    return [per_user_gains(np.load(ranks_path(results, r), allow_pickle=False), 10, metric) for r in rows]


def per_user_gauc(results: str, base: list[dict], other: list[dict]) -> tuple[list, list] | None:
    """Per-user AUCs of two methods' seeds as values whose plain mean over users is each seed's GAUC (each AUC
    times its impression weight over the mean weight), on the users with an AUC in every seed of both; None when a
    row has no stored per-user AUCs. ``seed_bootstrap`` of these resamples users and seeds as for R@10 (the
    resampled GAUC is then a mean of weighted values, not a ratio: a close approximation with equal weights)."""
    import numpy as np

    from benchmarks.row_comparisons import aucs_path

    paths = [aucs_path(r) for r in base + other]
    if any(p is None or not p.exists() for p in paths):
        return None
    loaded = [np.load(p, allow_pickle=False) for p in paths]
    if len({len(v) for v, _ in loaded}) != 1:
        return None
    mask = np.logical_and.reduce([np.isfinite(v) for v, _ in loaded])
    values = [np.where(mask, v, 0.0) * w * mask / max((w * mask).mean(), 1e-12) for v, w in loaded]
    return values[:len(base)], values[len(base):]


def gauc_delta(results: str, base: list[dict], other: list[dict], paired_seeds: bool = False) -> str:
    from sidkit.evaluation.seeds import seed_bootstrap

    values = per_user_gauc(results, base, other)
    if values is None:
        return "-"
    d = seed_bootstrap(*values, paired_seeds=paired_seeds)
    return f"{d['lift']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] (p {d['p_value']:.3f})"


def seeds_by_host(runs: list[dict]) -> str:
    """Where each seed ran: ``AVX2 · fp32`` when all did on one kind of host, else ``s0 s1 AVX2 · fp32; s2 ...``."""
    groups: dict[str, list[str]] = {}
    for r in runs:
        groups.setdefault(host(r), []).append(f"s{r['tokenizer_seed']}")
    if len(groups) == 1:
        return next(iter(groups))
    return "; ".join(f"{' '.join(seeds)} {host}" for host, seeds in groups.items())


def table(results: str, rows: list[dict], dataset: str, eval_config: str, protocol: str) -> str:
    from sidkit.evaluation.seeds import seed_bootstrap

    by_method: dict[str, list[dict]] = {}
    for r in rows:
        by_method.setdefault(r["tokenizer_method"], []).append(r)
    base = by_method.get("rqvae")
    base_hits, base_gains = (per_user(results, base, "recall"), per_user(results, base, "ndcg")) if base else (None, None)
    lines = [f"### {dataset}: methods over tokenizer seeds ({eval_config})\n",
             f"Written {now()} on {machine()}; the rows were measured on {hosts(rows)} (per seed: the last column) · "
             f"`python benchmarks/seed_spread.py --dataset {dataset} --write` · each seed: "
             "`run.py train --set tokenizer.seed=S --set features.seed=S`, then `run.py evaluate` on that version "
             f"(eval_config_sha256 `{protocol[:12]}`, the generator's own seed fixed by it). Mean over seeds with a "
             "two-level bootstrap interval (seeds and users); Δ vs RQ-VAE: difference of the means, users paired, seeds "
             "drawn independently per method (sidkit/evaluation/seeds.py). Per-run rows, times and loads: "
             f"benchmarks/results/{results}.json.\n",
             "| method | seeds | R@10 per seed (model version) | R@10 mean [95% CI] | seed sd | N@10 mean [95% CI] | "
             "Δ R@10 vs rqvae [95% CI] (p) | Δ N@10 vs rqvae (p) | GAUC per seed | Δ GAUC vs rqvae [95% CI] (p) | "
             "ISA · precision |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---|"]
    for method, runs in by_method.items():
        runs = sorted(runs, key=lambda r: r["tokenizer_seed"])
        hits, gains = per_user(results, runs, "recall"), per_user(results, runs, "ndcg")
        r10, n10 = seed_bootstrap(hits), seed_bootstrap(gains)
        delta = ndelta = gdelta = "-"
        if base and method != "rqvae":
            gdelta = gauc_delta(results, base, runs)
            d = seed_bootstrap(base_hits, hits)
            nd = seed_bootstrap(base_gains, gains)
            delta = f"{d['lift']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] (p {d['p_value']:.3f})"
            ndelta = f"{nd['lift']:+.4f} (p {nd['p_value']:.3f})"
        seeds = ", ".join(f"{r['retrieval']['recall@10']:.4f} (s{r['tokenizer_seed']}, v{r['model_version']})" for r in runs)
        gaucs = " / ".join(f"{r['ranking']['gauc']:.4f}" for r in runs)
        sd = f"{r10['seed_sd']:.4f}" if r10["seed_sd"] is not None else "-"
        where = seeds_by_host(runs)
        lines.append(f"| {method} | {len(runs)} | {seeds} | {r10['mean']:.4f} [{r10['ci_low']:.4f}, {r10['ci_high']:.4f}] | "
                     f"{sd} | {n10['mean']:.4f} [{n10['ci_low']:.4f}, {n10['ci_high']:.4f}] | {delta} | {ndelta} | "
                     f"{gaucs} | {gdelta} | {where} |")
    ablations = [m for m in by_method if ":" in m and m.split(":")[0] in by_method]
    if ablations:
        lines += ["", "Ablations against their full method, seed s against seed s (both trained with every seed set to s) "
                  "and users paired (`seed_bootstrap(..., paired_seeds=True)`):", "",
                  "| ablation | full method | seeds | Δ R@10 per seed | Δ R@10 mean [95% CI] (p) | Δ N@10 mean (p) | "
                  "Δ GAUC per seed | Δ GAUC mean [95% CI] (p) |", "|---|---|---:|---|---:|---:|---|---:|"]
        for method in ablations:
            lines.append(ablation_line(results, method, by_method))
    return "\n".join(lines) + "\n"


def ablation_line(results: str, method: str, by_method: dict[str, list[dict]]) -> str:
    """One ablation against its full method on the seeds both have, seeds and users paired."""
    from sidkit.evaluation.seeds import seed_bootstrap

    full = method.split(":")[0]
    pairs = {r["tokenizer_seed"]: r for r in by_method[full]}
    mine = sorted((r for r in by_method[method] if r["tokenizer_seed"] in pairs), key=lambda r: r["tokenizer_seed"])
    if not mine:
        return f"| {method} | {full} | 0 | no seed in common | | | | |"
    theirs = [pairs[r["tokenizer_seed"]] for r in mine]
    d = seed_bootstrap(per_user(results, theirs, "recall"), per_user(results, mine, "recall"), paired_seeds=True)
    nd = seed_bootstrap(per_user(results, theirs, "ndcg"), per_user(results, mine, "ndcg"), paired_seeds=True)
    each = ", ".join(f"{a['retrieval']['recall@10'] - b['retrieval']['recall@10']:+.4f} (s{a['tokenizer_seed']})"
                     for a, b in zip(mine, theirs))
    gauc = " / ".join(f"{a['ranking']['gauc'] - b['ranking']['gauc']:+.4f}" for a, b in zip(mine, theirs))
    return (f"| {method} | {full} | {len(mine)} | {each} | {d['lift']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] "
            f"(p {d['p_value']:.3f}) | {nd['lift']:+.4f} (p {nd['p_value']:.3f}) | {gauc} | "
            f"{gauc_delta(results, theirs, mine, paired_seeds=True)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", choices=["beauty", "movielens"], default="movielens")
    ap.add_argument("--eval-config", default=None, help="default: configs/eval_<dataset>.yaml")
    ap.add_argument("--methods", nargs="*", default=["rqvae", "adasid"])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--allow-contended", action="store_true", help="see downstream_table.py")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    eval_config = args.eval_config or f"configs/eval_{args.dataset}.yaml"
    protocol, results = current_eval_sha(eval_config), f"seeds_{args.dataset}"
    path = ROOT / "benchmarks" / "results" / f"{results}.json"

    def stored() -> dict[str, dict]:
        return {r["method"]: r for r in (json.loads(path.read_text())["runs"] if path.exists() else [])}

    for method in args.methods:
        for seed in args.seeds:
            key = f"{method}@seed{seed}"
            old = stored().get(key)
            if old and old.get("status") == "succeeded" and old.get("eval_config_sha256") == protocol:
                print(f"{key}: measured ({old['measured_at']}), kept", flush=True)
                continue
            t = train(args.dataset, method, seed)
            if t.get("status") != "succeeded":
                print(f"{key}: training failed: {t.get('error', '')}", flush=True)
                continue
            print(f"{key}: model version {t['model_version']} trained in {t['train_wall_seconds']:.0f}s", flush=True)
            s = evaluate_row(eval_config, str(t["model_version"]), key, results, args.allow_contended)
            s.update(tokenizer_method=method, tokenizer_seed=seed, train_wall_seconds=t["train_wall_seconds"],
                     train_load_average_1min_start=t["train_load_average_1min_start"],
                     sid_quality=t.get("sid_quality"))
            merged = stored()
            merged[key] = s
            save_json(results, {"date": now(), "machine": machine(), "runs": list(merged.values())})
            r = s.get("retrieval", {})
            print(key, s.get("status"), f"R@10 {r.get('recall@10', float('nan')):.4f}", s.get("error", ""), flush=True)
    rows = [r for r in stored().values() if r.get("status") == "succeeded" and r.get("eval_config_sha256") == protocol]
    if not rows:
        print("no rows under this eval config yet")
        return
    text = table(results, rows, args.dataset, eval_config, protocol)
    print(text)
    if args.write:
        update_block(results.replace("_", "-"), text)


if __name__ == "__main__":
    main()
