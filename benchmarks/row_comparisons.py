"""How the downstream tables compare rows: per-user ranks and AUCs on disk, paired bootstraps (R@10, GAUC), and
the comparison sections (re-runs, ablations against their method, the same version under another eval config).
Used by benchmarks/downstream_table.py."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import ROOT


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


def host(row: dict) -> str:
    """``ISA · precision`` a row ran with; '-' where an older row lacks them."""
    return f"{row.get('isa', '-')} · {row.get('precision') or '-'}"


def hosts(rows: list[dict]) -> str:
    """The distinct ``ISA · precision`` of a table's rows: rows are re-run one at a time, often on other machines."""
    return ", ".join(sorted({host(r) for r in rows})) or "-"


def where(row: dict) -> str:
    """ISA, precision and load average (start -> end) a row ran with; '-' where an older row lacks them."""
    load = (f"{row['load_average_1min_start']:.1f} -> {row['load_average_1min_end']:.1f}"
            if "load_average_1min_start" in row else "-")
    return f"{host(row)} · {load}{' (contended)' if row.get('contended') else ''}"


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
    for r in rows:   # a multi-view row's single views: the ensemble removed, same generator, same users
        for view, f in (r.get("view_ranks_files") or {}).items() if r.get("status") == "succeeded" else ():
            own = {**r, "ranks_file": f}
            out.append(f"| {r['method']}: {view} view's beams only (no ensemble, same generator) v{r['model_version']} | "
                       f"{r['method']} v{r['model_version']} | {r['retrieval']['recall@10']:.4f} | "
                       f"{r['retrieval']['single_view'][view]['recall@10']:.4f} | {delta_text(paired(table, r, own))} | "
                       "- | - |")
    if not out:
        return []
    return ["", "Ablations and variants against their full method (Δ paired on the same test users; Δ GAUC where both "
            "rows stored per-user AUCs):\n",
            "| row | full method | its R@10 | R@10 | Δ R@10 (p) | GAUC full -> variant | Δ GAUC (p) |",
            "|---|---|---:|---:|---:|---:|---:|"] + out
