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


def reference_baselines(model: str, version: str, exclude_history: bool = False) -> dict[str, dict]:
    """Non-generative references on the model version's splits (``reference_rankings``), with their metrics."""
    import numpy as np
    from zenml.client import Client

    from sidkit.evaluation.downstream import IndexedSplits
    from sidkit.retrieval.metrics import retrieval_metrics, target_ranks

    mv = Client().get_model_version(model, version)
    d = IndexedSplits.build(mv.get_artifact("sid_table").load(), mv.get_artifact("splits").load())
    return {name: retrieval_metrics(np.asarray(target_ranks(ranked, d.test_tgt)))
            for name, ranked in reference_rankings(d.train, d.valid_hist, d.valid_tgt, d.test_hist,
                                                   exclude_history).items()}


def reference_rankings(train: list[list[int]], valid_hist: list[list[int]], valid_tgt: list[int],
                       test_hist: list[list[int]], exclude_history: bool = False) -> dict[str, list[list[int]]]:
    """Top-20 per test user of the most popular items and of last-3-items transition counts (decayed 1, 1/2,
    1/4; training transitions, plus validation ones for test; popular items fill up). ``exclude_history``
    (the protocol's ``retrieval.exclude_history``, as the generators apply it): a user's own history items
    are never ranked, so they take no top-20 slot."""
    from collections import Counter, defaultdict

    longest = max((len(h) for h in test_hist), default=0)
    popular = [i for i, _ in Counter(i for s in train for i in s).most_common(20 + longest)]
    trans: dict[int, Counter] = defaultdict(Counter)
    for seq in train:
        for a, b in zip(seq, seq[1:]):
            trans[a][b] += 1
    for h, t in zip(valid_hist, valid_tgt):
        if h:
            trans[h[-1]][t] += 1

    def follow(h: list[int]) -> list[int]:
        seen = set(h) if exclude_history else set()
        c: Counter = Counter()
        for k, item in enumerate(reversed(h[-3:])):
            for j, n in trans[item].items():
                if j not in seen:
                    c[j] += n * 0.5 ** k
        ranked = [i for i, _ in c.most_common(20)]
        return ranked + [p for p in popular if p not in ranked and p not in seen][:20 - len(ranked)]

    def most_popular(h: list[int]) -> list[int]:
        seen = set(h) if exclude_history else set()
        return [p for p in popular if p not in seen][:20]

    rule = "same splits, history excluded" if exclude_history else "same splits"
    return {f"most popular ({rule})": [most_popular(h) for h in test_hist],
            f"last-3-items transitions ({rule})": [follow(h) for h in test_hist]}


def sasrec_reference(model: str, version: str, epochs: int = 200, patience: int = 3, seed: int = 0,
                     exclude_history: bool = False) -> dict:
    """An item-ID sequential model on the same splits, for calibration: SASRec (2 layers, d 64,
    dropout 0.3 on the inputs) trained with full-softmax cross-entropy over all items on the training
    split, early-stopped on validation Recall@10 (5,000 users, every 5 epochs), full ranking of the test
    users (``exclude_history``: the user's history items masked, as the protocol's generators do). The
    TIGER paper reports SASRec at R@10 0.0605 on Beauty."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from zenml.client import Client

    from sidkit.evaluation.downstream import IndexedSplits
    from sidkit.features.behaviour import SASRec, SASRecConfig, _length_bucketed_batches, _windows
    from sidkit.retrieval.metrics import retrieval_metrics, target_ranks
    from sidkit.utils import torch_generator

    mv = Client().get_model_version(model, version)
    d = IndexedSplits.build(mv.get_artifact("sid_table").load(), mv.get_artifact("splits").load())
    n = len(d.item_ids)
    cfg = SASRecConfig(dim=64, max_len=20, dropout=0.3, batch_size=128, seed=seed)
    torch.manual_seed(seed)
    g = torch_generator(seed)
    net = SASRec(n, cfg)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.98))
    inputs, targets = _windows([[i + 1 for i in s] for s in d.train], cfg.max_len)
    keep = (targets > 0).any(1)
    inputs, targets = torch.from_numpy(inputs[keep]), torch.from_numpy(targets[keep])
    lengths = (inputs > 0).sum(1)

    def top20(histories):
        net.eval()
        out = []
        with torch.no_grad():
            for s in range(0, len(histories), 512):
                x = torch.zeros(len(histories[s:s + 512]), cfg.max_len, dtype=torch.long)
                for r, h in enumerate(histories[s:s + 512]):
                    x[r, -len(h[-cfg.max_len:]):] = torch.tensor([i + 1 for i in h[-cfg.max_len:]])
                scores = net(x)[:, -1] @ net.item.weight[1:].T
                if exclude_history:
                    for r, h in enumerate(histories[s:s + 512]):
                        scores[r, h] = float("-inf")
                out += scores.topk(20).indices.tolist()
        return out

    t0, best, best_state, bad, epoch = time.perf_counter(), -1.0, None, 0, 0
    for epoch in range(epochs):
        net.train()
        for idx in _length_bucketed_batches(lengths, cfg.batch_size, g):
            x, y = inputs[idx], targets[idx]
            w = int((x > 0).sum(1).max())
            logits = net(x[:, -w:]) @ net.item.weight[1:].T
            loss = F.cross_entropy(logits.reshape(-1, n), (y[:, -w:] - 1).reshape(-1), ignore_index=-1)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 5 == 4:
            r10 = retrieval_metrics(np.asarray(target_ranks(top20(d.valid_hist[:5000]), d.valid_tgt[:5000])))["recall@10"]
            best, best_state, bad = (r10, {k: v.clone() for k, v in net.state_dict().items()}, 0) if r10 > best else (best, best_state, bad + 1)
            if bad >= patience:
                break
    net.load_state_dict(best_state)
    m = retrieval_metrics(np.asarray(target_ranks(top20(d.test_hist), d.test_tgt)))
    m.update(epochs=epoch + 1, train_seconds=time.perf_counter() - t0, valid_recall10=best, exclude_history=exclude_history)
    return m


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


def table_name(eval_config: str) -> str:
    """Results of one eval config: configs/eval_beauty.yaml -> downstream_beauty, eval_beauty_lean.yaml ->
    downstream_beauty_lean (its json, ranks, logs and BENCHMARKS block), so protocols never share a file."""
    return "downstream_" + Path(eval_config).stem.removeprefix("eval_")


def ranks_path(table: str, row: dict) -> Path:
    """The per-user test ranks of a row: one file per run (so a replaced row keeps its own), or the
    per-method file of rows stored before runs had their own."""
    name = row.get("ranks_file") or f"{table}_{row['method']}.npy"
    return ROOT / "benchmarks" / "results" / "ranks" / name


def paired(table: str, base: dict, row: dict) -> dict | None:
    """Paired bootstrap of R@10 (row - base) on the same test users, from the stored per-user ranks."""
    import numpy as np

    from sidkit.evaluation.ab import paired_bootstrap
    from sidkit.retrieval.metrics import per_user_gains

    a, b = ranks_path(table, base), ranks_path(table, row)
    if a == b or not (a.exists() and b.exists()):
        return None
    ra, rb = np.load(a, allow_pickle=False), np.load(b, allow_pickle=False)
    if len(ra) != len(rb):
        return None
    ones = np.ones(len(ra))
    return paired_bootstrap((per_user_gains(ra, 10, "recall"), ones), (per_user_gains(rb, 10, "recall"), ones))


def aucs_path(row: dict) -> Path | None:
    return ROOT / "benchmarks" / "results" / "ranks" / row["aucs_file"] if row.get("aucs_file") else None


def paired_gauc(base: dict, row: dict) -> dict | None:
    """Paired bootstrap of GAUC (row - base) on the same test users, from the stored per-user AUCs and
    impression counts (users without an AUC in either row weigh 0)."""
    import numpy as np

    from sidkit.evaluation.ab import paired_bootstrap

    a, b = aucs_path(base), aucs_path(row)
    if a is None or b is None or a == b or not (a.exists() and b.exists()):
        return None
    (va, wa), (vb, wb) = np.load(a, allow_pickle=False), np.load(b, allow_pickle=False)
    if len(va) != len(vb):
        return None
    both = np.isfinite(va) & np.isfinite(vb)
    return paired_bootstrap((np.where(both, va, 0.0), wa * both), (np.where(both, vb, 0.0), wb * both))


def delta_text(d: dict | None) -> str:
    return f"{d['lift']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] (p {d['p_value']:.3f})" if d else "-"


def interval(r: dict, key: str) -> str:
    ci = r.get(f"{key}_ci")
    return f"{r[key]:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else f"{r[key]:.4f}"


def where(row: dict) -> str:
    """ISA, precision and load average (start -> end) a row ran with; '-' where an older row lacks them."""
    load = (f"{row['load_average_1min_start']:.1f} -> {row['load_average_1min_end']:.1f}"
            if "load_average_1min_start" in row else "-")
    return f"{row.get('isa', '-')} · {row.get('precision') or '-'} · {load}{' (contended)' if row.get('contended') else ''}"


def reruns(table: str, rows: list[dict], previous: list[dict]) -> list[str]:
    """Each shown row against the earlier runs of the same method under the same protocol that it replaced
    (another machine, ISA or precision): paired Δ R@10 on the same test users, so a precision or machine
    change is judged on evidence, not assumed neutral."""
    out = []
    for s in rows:
        for old in (p for p in previous if p["method"] == s["method"]
                    and p.get("eval_config_sha256") == s.get("eval_config_sha256") and p.get("status") == "succeeded"):
            a, b = old["retrieval"].get("inputs_sha256"), s["retrieval"].get("inputs_sha256")
            same = "not fingerprinted in both rows" if not (a and b) else "identical" if a == b else "DIFFERENT"
            delta = delta_text(paired(table, old, s))
            out.append(f"| {s['method']} v{s['model_version']} | v{old['model_version']}, {old.get('measured_at', '?')} | {where(old)} | "
                       f"{old['retrieval']['recall@10']:.4f} | {s['retrieval']['recall@10']:.4f} | {delta} | "
                       f"{old['retrieval']['train_seconds'] / 60:.1f} -> {s['retrieval']['train_seconds'] / 60:.1f} min | {same} |")
    if not out:
        return []
    return ["", "Re-runs under the same protocol (the shown row against the run it replaced; Δ R@10 paired on the same "
            "test users):\n", "| row | replaced run (version, date) | its ISA · precision · load | its R@10 | R@10 now | Δ R@10 (p) | "
            "generator train | SIDs and splits |", "|---|---|---|---:|---:|---:|---:|---|"] + out


def against(table: str, rows: list[dict], other_config: str) -> list[str]:
    """Each shown row against the same tokenizer version's row under another eval config (e.g. ADA-SID's router
    weights on vs off): paired Δ R@10 on the same test users, only where both rows hold the same SIDs and
    splits (``inputs_sha256``); GAUC paired too where both rows stored per-user AUCs."""
    other_table = table_name(other_config)
    path = ROOT / "benchmarks" / "results" / f"{other_table}.json"
    others = {r["method"]: r for r in json.loads(path.read_text())["runs"]} if path.exists() else {}
    out = []
    for s in rows:
        o = others.get(s["method"])
        if s.get("status") != "succeeded" or not o or o.get("status") != "succeeded":
            continue
        fingerprint = s["retrieval"].get("inputs_sha256")
        same = fingerprint is not None and o["retrieval"].get("inputs_sha256") == fingerprint
        d = paired(table, o, s) if same else None
        delta = (f"{d['lift']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] (p {d['p_value']:.3f})" if d
                 else "- (other SIDs or splits)" if not same else "-")
        out.append(f"| {s['method']} v{s['model_version']} | v{o['model_version']} | {o['retrieval']['recall@10']:.4f} | "
                   f"{s['retrieval']['recall@10']:.4f} | {delta} | {o['ranking']['gauc']:.4f} -> {s['ranking']['gauc']:.4f} | "
                   f"{delta_text(paired_gauc(o, s))} |")
    if not out:
        return ["", f"No row here has a counterpart under {other_config} yet."]
    return ["", f"Against {other_config} (`{other_table}`), same tokenizer version, paired on the same test users "
            "(Δ GAUC where both rows stored per-user AUCs):\n",
            "| row | there | its R@10 | R@10 here | Δ R@10 (p) | GAUC there -> here | Δ GAUC (p) |",
            "|---|---:|---:|---:|---:|---:|---:|"] + out


def variants(table: str, rows: list[dict]) -> list[str]:
    """Each ablation / variant row (``method:variant``) against its full method's row, paired on the same users."""
    full = {r["method"]: r for r in rows if ":" not in r["method"] and r.get("status") == "succeeded"}
    out = []
    for r in rows:
        base = full.get(r["method"].split(":")[0])
        if ":" not in r["method"] or base is None or r.get("status") != "succeeded":
            continue
        out.append(f"| {r['method']} v{r['model_version']} | {base['method']} v{base['model_version']} | "
                   f"{base['retrieval']['recall@10']:.4f} | {r['retrieval']['recall@10']:.4f} | "
                   f"{delta_text(paired(table, base, r))} | {base['ranking']['gauc']:.4f} -> {r['ranking']['gauc']:.4f} | "
                   f"{delta_text(paired_gauc(base, r))} |")
    if not out:
        return []
    return ["", "Ablations and variants against their full method (Δ paired on the same test users; Δ GAUC where both "
            "rows stored per-user AUCs):\n",
            "| row | full method | its R@10 | R@10 | Δ R@10 (p) | GAUC full -> variant | Δ GAUC (p) |",
            "|---|---|---:|---:|---:|---:|---:|"] + out


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
        ref = sasrec_reference(MODELS[args.dataset], next(iter(versions.values())),
                               exclude_history=excludes_history(eval_config))
        ref.update(measured_at=now(), commit=git_rev())
        save_json(f"sasrec_reference_{args.dataset}", ref)
        print("SASRec reference", ref, flush=True)
    if args.methods == ["stale"]:
        args.methods = [m for m, r in merged.items() if r.get("eval_config_sha256") != protocol]
        print(f"re-running the rows measured under another protocol: {args.methods or 'none'}", flush=True)
    for method in args.methods:
        if method not in versions:
            base, _, variant = method.partition(":")
            config = (f"configs/ablations/train_{args.dataset}_{base}_{variant}.yaml" if variant
                      else f"configs/train_{args.dataset}_{method}.yaml")
            print(f"{method}: no model version of {MODELS[args.dataset]} trained with it; run "
                  f"python run.py train --config {config}", flush=True)
            continue
        # the run's own output (per-epoch lines) goes to a log to follow while it runs (tail -f)
        log = ROOT / "benchmarks" / "logs" / f"{results}_{method.replace(':', '-')}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"{method}: model version {versions[method]}, log {log.relative_to(ROOT)}", flush=True)
        with tempfile.TemporaryDirectory() as tmp, log.open("w") as log_file:
            out = Path(tmp) / "e.json"
            # --no-cache: a benchmark measures; ZenML's step cache keys on the config and the step's own source,
            # not on sidkit's code, so a cached run would return an older commit's result in 20 seconds
            cmd = [sys.executable, "run.py", "evaluate", "--config", eval_config, "--model-version", versions[method],
                   "--summary", str(out), "--no-cache"]
            load_start, quiet = wait_for_quiet()
            if not quiet and not args.allow_contended:
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
        if ranks is not None:
            import numpy as np

            s["ranks_file"] = f"{results}_{method.replace(':', '-')}_{str(s.get('run_id', 'run'))[:8]}.npy"
            ranks_path(results, s).parent.mkdir(parents=True, exist_ok=True)
            np.save(ranks_path(results, s), np.asarray(ranks, dtype=np.int32), allow_pickle=False)
        s.update({"method": method, "model_version": versions[method], "wall_seconds": wall, "eval_config": eval_config,
                  "measured_at": now(), "commit": commit, "code_sha256": code, "embedding_cache_fixed": True,
                  "load_average_1min_start": load_start, "contended": not quiet, "load_average_1min_end": round(os.getloadavg()[0], 2),
                  "machine": machine(), "isa": cpu_isa(),
                  "precision": s.get("retrieval", {}).get("precision")})
        # re-read before saving: another instance (other --methods) may have finished a row meanwhile
        merged, previous = stored_runs(), stored_previous()
        if method in merged:  # a replaced row is kept (with its ranks), e.g. to compare precisions on the same users
            previous.append(merged[method])
        merged[method] = s
        r = s.get("retrieval", {})
        print(method, s.get("status"), f"{wall:.0f}s", f"R@10 {r.get('recall@10', float('nan')):.4f}",
              s.get("error", ""), flush=True)
        save_json(results, {"date": now(), "machine": machine(),
                            "runs": [merged[m] for m in ordered(merged)], "previous": previous})
    stale = [merged[m] for m in ordered(merged) if merged[m].get("eval_config_sha256") != protocol]
    rows = [merged[m] for m in ordered(merged) if merged[m].get("eval_config_sha256") == protocol]
    lines = [f"### Downstream on {args.dataset} ({eval_config}): generative retrieval and ranking per tokenizer\n",
             f"{now()} · {machine()} · `python benchmarks/downstream_table.py --dataset {args.dataset} --eval-config {eval_config} --write` · "
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
    ref_path = ROOT / "benchmarks" / "results" / f"sasrec_reference_{args.dataset}.json"
    if ref_path.exists():
        m = json.loads(ref_path.read_text())
        rule = ("history excluded" if m.get("exclude_history") else "history NOT excluded: not this protocol"
                if excludes_history(eval_config) else "same splits")
        lines.append(f"| SASRec, item IDs, full-softmax CE (same splits, {rule}; {m['measured_at']}) | | {m['recall@5']:.4f} | "
                     f"{m['recall@10']:.4f} | {m['ndcg@5']:.4f} | {m['ndcg@10']:.4f} | | | | | {m['epochs']} | "
                     f"{m['train_seconds'] / 60:.1f} min | | | | |")
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
    table = "\n".join(lines + strata + variants(results, rows) + reruns(results, rows, stored_previous())
                      + paired_with) + "\n"
    print(table)
    if args.write:
        update_block(results.replace("_", "-"), table)


if __name__ == "__main__":
    main()
