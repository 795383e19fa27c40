"""SID quality of the training pipeline on the real datasets (MovieLens-100k, Amazon Beauty).

Runs `python run.py train --config <cfg> --summary ...` for each config (a fresh process each,
as a user would) and tabulates collision rate before/after resolution, per-level utilisation
and perplexity, reconstruction loss and wall time. Use --no-cache for cold timings.

    python benchmarks/sid_quality_real.py [--configs configs/train_movielens.yaml ...] [--no-cache] [--write]
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
DEFAULT = [f"configs/train_{ds}_{m}.yaml" for ds in ("movielens", "beauty") for m in METHODS]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--configs", nargs="+", default=DEFAULT)
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    rows = []
    for cfg in args.configs:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "s.json"
            cmd = [sys.executable, "run.py", "train", "--config", cfg, "--summary", str(out)]
            if args.no_cache:
                cmd.append("--no-cache")
            # the 1-minute load average lags: a job that just ended still shows ~2, so wait (up to 2 min) for it
            # to decay before judging whether something else is running
            load_start, _ = wait_for_quiet(timeout=120.0)
            # the code the run imports, read now: a commit made while it runs is not credited with its result
            from pipelines.caching import code_fingerprint

            commit, code, started = git_rev(), code_fingerprint(), now()
            t = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ,
                                                                                          "SIDKIT_PROGRESS": "0"})
            wall = time.perf_counter() - t
            s = json.loads(out.read_text()) if out.exists() else {"status": "no summary", "error": proc.stderr[-500:]}
        s.update(wall_seconds=wall, config=cfg, measured_at=started, commit=commit, code_sha256=code)
        # the wall time is a speed figure only on a quiet machine; the SID metrics do not depend on the load.
        # Contended: something heavy ran before this job started, or the load ended above what this job alone
        # (one thread per core) makes
        load_end, cores = round(os.getloadavg()[0], 2), os.cpu_count() or 2
        s.update(isa=cpu_isa(), load_average_1min_start=load_start, load_average_1min_end=load_end,
                 contended=load_start >= 0.75 * cores or load_end > cores + 0.75, embedding_cache_fixed=True)
        rows.append(s)
        print(cfg, s.get("status"), f"{wall:.0f}s", s.get("error", ""), flush=True)
    # merge with earlier results so a subset can be re-run; the table lists every config measured
    previous = ROOT / "benchmarks" / "results" / "sid_quality_real.json"
    merged = {r["config"]: r for r in (json.loads(previous.read_text())["runs"] if previous.exists() else [])}
    for r in rows:
        merged[r["config"]] = r
    order = {c: i for i, c in enumerate(DEFAULT)}
    rows = sorted(merged.values(), key=lambda r: order.get(r["config"], len(order)))
    save_json("sid_quality_real", {"date": now(), "machine": machine(), "runs": rows})
    lines = ["### SID quality on real data: five tokenizers x two datasets (training pipeline)\n",
             f"{now()} · {machine()} · commit {git_rev()} (each row: `measured_at`, `commit` in "
             "benchmarks/results/sid_quality_real.json) · `python benchmarks/sid_quality_real.py --write`"
             f"{' --no-cache' if args.no_cache else ''} · wall time of the whole `run.py train` process"
             f"{' (cold: no step cache; the embedding cache may be warm)' if args.no_cache else ''}.\n",
             "Collision rate = (N - unique raw SIDs) / N before resolution; after = with the config's policy "
             "(`append_token` adds a token, `relocate` keeps the length). Utilisation and perplexity per SID "
             "position (multi-expert methods: experts' levels concatenated). Recon MSE per view on L2-normalised "
             "inputs. Training time = sum of the tokenizer's epoch times (+ stage 2 for MMQ); wall = whole process. "
             "Per expert: collision rate of each expert's own block of codes (multi-expert methods; MACRec's branches "
             "are its modalities), before resolution. † = measured before the embedding-cache fix (43e7737).\n",
             "| dataset | method | views | SID length | collision before | after | per expert | utilisation per position | "
             "perplexity per position | recon MSE per view | training time | wall time | ISA · load |",
             "|---|---|---|---:|---:|---:|---|---|---|---|---:|---:|---|"]
    for s in rows:
        if s.get("status") != "succeeded":
            lines.append(f"| {s['config']} | failed: {s.get('error', '')[:80]} |||||||||")
            continue
        q, t = s["sid_quality"], s["tokenizer"]
        fmt = lambda xs, p: " / ".join(f"{x:.{p}f}" for x in xs)  # noqa: E731
        recon = ", ".join(f"{v} {e:.5f}" for v, e in q["recon_loss_per_view"].items())
        train_s = t.get("training_seconds", 0) + t.get("stage2_seconds", 0)
        experts = ", ".join(f"{e} {r:.4f}" for e, r in q.get("collision_rate_per_expert", {}).items()) or "-"
        load = (f"{s.get('isa', '-')} · {s['load_average_1min_start']:.1f} -> {s['load_average_1min_end']:.1f}"
                f"{' (contended)' if s.get('contended') else ''}" if "load_average_1min_start" in s else "-")
        lines.append(f"| {s['dataset']['name']} | {t['method']}{' + stage 2' if t.get('stage', '').startswith('stage2') else ''}"
                     f"{'' if s.get('embedding_cache_fixed') else ' †'} | "
                     f"{'+'.join(t['input_views'])} | {q['sid_length_final']} | {q['collision_rate']:.4f} | "
                     f"{q['collision_rate_final']:.4f} | {experts} | {fmt(q['utilization'], 2)} | {fmt(q['perplexity'], 0)} | "
                     f"{recon} | {train_s:.0f} s | {s['wall_seconds']:.0f} s | {load} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.write:
        update_block("sid-quality-real", table)


if __name__ == "__main__":
    main()
