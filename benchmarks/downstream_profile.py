"""Where a downstream evaluation row's time goes, against what this CPU can do.

Runs the real code paths of `run.py evaluate` (sidkit.retrieval.generator.train_generator,
generate_ranked, sidkit.ranking.din) on a dataset's real leave-one-out splits, phase by phase, and
projects the cost of one whole row under an eval config (its epochs, validation cadence and
users, beam, DIN epochs):

* the CPU's matmul peak, fp32 and bf16 (GFLOP/s, square 2048 and the decoder's feed-forward
  shape), so that every phase's efficiency reads as a percentage of it;
* one generator training epoch (wall), its nominal FLOPs (torch's FlopCounterMode on a sample of
  batches, scaled by target tokens; recomputation not counted) and an operator breakdown (torch.profiler, self CPU time
  grouped into matmul / attention / feed-forward activation / normalisation / loss / embedding /
  optimiser / other);
* validation and test beam search (users/s), DIN training (one epoch) and scoring.

SIDs: random 3 x 256 codes + a collision token per item (timing does not depend on which item has
which code; the trie has the same shape as a trained tokenizer's). Run alone: the load average is
recorded before and after and a row taken beside other heavy jobs is marked.

    python benchmarks/downstream_profile.py [--dataset beauty] [--eval-config configs/eval_beauty.yaml]
        [--label after] [--write]

The script only uses APIs that existed before the speed work (commit cc114b9), so the same file
can profile that commit from a worktree (`--label before`) for a like-for-like comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from benchmarks.common import ROOT, git_rev, machine, median_seconds, now, update_block  # noqa: E402

# SIDKIT_PROFILE_ROOT=<worktree of another commit>: profile that commit's sidkit with this script,
# configs and data, writing results here (a like-for-like before/after)
PROFILED = Path(os.environ.get("SIDKIT_PROFILE_ROOT", ROOT)).resolve()
sys.path.insert(0, str(PROFILED))

DATASETS = ("beauty", "movielens")   # the dataset block of configs/train_<dataset>.yaml
CATEGORIES = [  # (category, substrings of aten op names), first match wins
    ("matmul", ("addmm", "aten::mm", "bmm", "matmul", "linear", "einsum")),
    ("attention", ("attention", "softmax", "_masked")),
    ("activation (GELU/ReLU)", ("gelu", "relu")),
    ("normalisation", ("layer_norm",)),
    ("loss / log-softmax", ("cross_entropy", "log_softmax", "nll_loss")),
    ("embedding", ("embedding", "index_select", "index_add", "gather", "scatter")),
    ("optimiser + weight average", ("adam", "_foreach", "lerp", "addcdiv", "addcmul", "sqrt")),
]


def matmul_peak(dtype: torch.dtype, m: int, k: int, n: int) -> float:
    """GFLOP/s of an (m, k) @ (k, n) matmul in ``dtype``, median of 5."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    return 2 * m * k * n / median_seconds(lambda: a @ b, 5) / 1e9


def load_splits(dataset: str, shared: Path | None):
    from sidkit.data.loaders import load_dataset
    from sidkit.data.splits import leave_one_out

    cfg = dict(yaml.safe_load((ROOT / f"configs/train_{dataset}.yaml").read_text())["parameters"]["dataset"])
    cfg["path"] = str(shared / Path(cfg["path"]).name if shared else (ROOT / cfg["path"]).resolve())
    catalogue = load_dataset(cfg)
    return catalogue, leave_one_out(catalogue.interactions)


def random_sids(n_items: int, seed: int = 0) -> np.ndarray:
    """3 levels x 256 codes + a 4th token numbering items that share a prefix (append_token)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n_items, 3))
    seen: dict[tuple, int] = defaultdict(int)
    extra = np.zeros(n_items, dtype=np.int64)
    for i, c in enumerate(map(tuple, codes.tolist())):
        extra[i] = seen[c]
        seen[c] += 1
    return np.concatenate([codes, extra[:, None]], 1)


def categorise(events) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for e in events:
        name = e.key.lower()
        cat = next((c for c, keys in CATEGORIES if any(k in name for k in keys)), "other")
        out[cat] += e.self_cpu_time_total / 1e6
    return dict(out)


def generator_epoch(data, sids, cfg_dict: dict, sample: float) -> dict:
    """One real training epoch (wall), plus FLOPs and an operator profile on a sample of the sequences."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    from sidkit.retrieval.generator import GeneratorConfig, train_generator, training_windows

    one = GeneratorConfig.model_validate({**cfg_dict, "epochs": 1})
    t = time.perf_counter()
    model, vocab, _ = train_generator(data.train, sids, one)
    epoch_s = time.perf_counter() - t
    rng = np.random.default_rng(0)
    part = [data.train[i] for i in np.sort(rng.choice(len(data.train), int(len(data.train) * sample), replace=False))]
    targets = lambda seqs: sum(len(w) - 1 for w in training_windows(seqs, one.max_history))  # noqa: E731
    try:   # the model's nominal FLOPs: without the chunked feed-forward's recomputation (sidkit.retrieval.feedforward)
        from sidkit.retrieval.feedforward import FeedForward
    except ImportError:
        FeedForward = None
    if FeedForward is not None:
        FeedForward.chunked = False
    with FlopCounterMode(display=False) as counter:
        train_generator(part, sids, one)
    if FeedForward is not None:
        FeedForward.chunked = True
    flops = counter.get_total_flops() * targets(data.train) / targets(part)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        train_generator(part, sids, one)
        sample_s = time.perf_counter() - t
    cats = categorise(prof.key_averages())
    scale = sample_s / max(sum(cats.values()), 1e-9)       # profiler self times -> this run's wall share
    return {"epoch_seconds": epoch_s, "epoch_flops": flops, "sample_seconds": sample_s,
            "breakdown_share": {k: v * scale / sample_s for k, v in sorted(cats.items(), key=lambda kv: -kv[1])},
            "model": model, "vocab": vocab, "windows": len(training_windows(data.train, one.max_history))}


def beams(model, vocab, sids, histories, cfg_dict: dict, n_users: int) -> float:
    """Users per second of the real ranked generation (trie-constrained beam search) on n users."""
    from sidkit.retrieval.generator import GeneratorConfig, generate_ranked

    cfg = GeneratorConfig.model_validate(cfg_dict)
    users = histories[:n_users]
    t = time.perf_counter()
    generate_ranked(model, vocab, sids, users, cfg)
    return len(users) / (time.perf_counter() - t)


def din(data, sids, ranking: dict, n_score_users: int) -> dict:
    from sidkit.ranking.din import RankerConfig, evaluation_impressions, score, train_ranker

    cfg = RankerConfig.model_validate({**ranking, "epochs": 1})
    t = time.perf_counter()
    model, _ = train_ranker(data.train, len(data.item_ids), cfg, sids=sids)
    train_s = time.perf_counter() - t
    users = min(n_score_users, len(data.test_tgt))
    t = time.perf_counter()
    rows, hist, cand, _ = evaluation_impressions(data.test_hist[:users], data.test_tgt[:users], len(data.item_ids), cfg)
    try:
        score(model, hist, cand, rows)
    except TypeError:                                         # before scoring grouped by user
        score(model, hist, cand)
    score_s = (time.perf_counter() - t) * len(data.test_tgt) / users
    return {"epoch_seconds": train_s, "score_seconds_all_users": score_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", choices=DATASETS, default="beauty")
    ap.add_argument("--eval-config", default=None, help="default: configs/eval_<dataset>.yaml")
    ap.add_argument("--shared", type=Path, default=None, help="folder holding the datasets (default ../shared/data)")
    ap.add_argument("--sample", type=float, default=0.05, help="share of training sequences for FLOPs and the profile")
    ap.add_argument("--beam-users", type=int, default=2000)
    ap.add_argument("--label", default="after", help="name of this profile in the results (e.g. before / after)")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None,
                    help="override the eval config's retrieval precision (to separate the CPU from the precision)")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    from sidkit.evaluation.downstream import IndexedSplits
    from sidkit.sids.table import build_sid_table

    load_start = os.getloadavg()[0]
    eval_path = Path(args.eval_config or ROOT / f"configs/eval_{args.dataset}.yaml")
    params = yaml.safe_load(eval_path.read_text())["parameters"]
    retrieval, ranking = params["retrieval"], params["ranking"]
    if args.precision:
        retrieval = {**retrieval, "precision": args.precision}
    commit = git_rev() if PROFILED == ROOT else subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=PROFILED, capture_output=True, text=True).stdout.strip()
    result: dict = {"label": args.label, "measured_at": now(), "machine": machine(), "commit": commit,
                    "eval_config": str(eval_path.relative_to(ROOT) if eval_path.is_relative_to(ROOT) else eval_path),
                    "threads": torch.get_num_threads(), "load_average_1min_start": load_start}
    try:
        from sidkit.precision import cpu_isa, resolve
        result["isa"], result["precision"] = cpu_isa(), resolve(retrieval.get("precision", "auto"))
    except ImportError:                                     # before the precision setting existed
        result["isa"], result["precision"] = torch.backends.cpu.get_cpu_capability(), "fp32"

    d, ff = retrieval.get("d_model", 128), retrieval.get("decoder_d_ff") or retrieval.get("d_ff", 512)
    result["peak_gflops"] = {
        "fp32 2048^3": matmul_peak(torch.float32, 2048, 2048, 2048),
        "bf16 2048^3": matmul_peak(torch.bfloat16, 2048, 2048, 2048),
        f"fp32 4096x{d}x{ff}": matmul_peak(torch.float32, 4096, d, ff),
        f"bf16 4096x{d}x{ff}": matmul_peak(torch.bfloat16, 4096, d, ff)}
    print(json.dumps(result["peak_gflops"], indent=1), flush=True)

    t = time.perf_counter()
    catalogue, splits = load_splits(args.dataset, args.shared)
    items = catalogue.items["item_id"].to_list()
    sids = random_sids(len(items))
    table = build_sid_table(items, sids[:, :3], sids, "rqkmeans", [256, 256, 256], "append_token")
    data = IndexedSplits.build(table, splits)
    result["data_seconds"] = time.perf_counter() - t
    result["users"], result["items"] = len(data.test_tgt), len(items)

    g = generator_epoch(data, sids, retrieval, args.sample)
    model, vocab = g.pop("model"), g.pop("vocab")
    result["generator"] = g
    peak = result["peak_gflops"][f"{result['precision']} 2048^3"]
    g["gflops_per_s"] = g["epoch_flops"] / g["epoch_seconds"] / 1e9
    g["share_of_peak"] = g["gflops_per_s"] / peak
    print(json.dumps(g, indent=1), flush=True)

    valid_users = retrieval.get("valid_users", 0) or len(data.valid_tgt)
    n = min(args.beam_users, len(data.test_hist))
    result["valid_beam_users_per_s"] = beams(model, vocab, sids, data.valid_hist, retrieval, n)
    result["test_beam_users_per_s"] = beams(model, vocab, sids, data.test_hist, retrieval, n)
    result["din"] = din(data, sids, ranking, n)
    print(json.dumps({k: result[k] for k in ("valid_beam_users_per_s", "test_beam_users_per_s", "din")}, indent=1),
          flush=True)

    epochs, every = retrieval.get("epochs", 30), retrieval.get("valid_every", 1)
    row = {"generator training": epochs * g["epoch_seconds"],
           "validation beams": (epochs // every) * min(valid_users, len(data.valid_tgt)) / result["valid_beam_users_per_s"],
           "test beams": len(data.test_hist) / result["test_beam_users_per_s"],
           "DIN training": ranking.get("epochs", 5) * result["din"]["epoch_seconds"],
           "DIN scoring": result["din"]["score_seconds_all_users"]}
    result["projected_row_seconds"] = row
    result["projected_row_total_seconds"] = sum(row.values())
    result["load_average_1min_end"] = os.getloadavg()[0]
    result["contended"] = max(load_start, result["load_average_1min_end"]) > 1.5 * 2   # the run's own 2 threads ~ 2
    print(json.dumps({"projected_row_seconds": row, "total_min": sum(row.values()) / 60}, indent=1))
    if args.write:
        write(result, args.dataset)


def write(result: dict, dataset: str) -> None:
    path = ROOT / "benchmarks" / "results" / f"downstream_profile_{dataset}.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    stored[result["label"]] = result
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stored, indent=2))
    update_block(f"downstream-profile-{dataset}", render(stored, dataset))


def render(stored: dict, dataset: str) -> str:
    labels = list(stored)
    first = stored[labels[0]]
    lines = [f"### Where a {dataset} evaluation row's time goes (projected from measured phases)", "",
             f"`python benchmarks/downstream_profile.py --dataset {dataset} --label <label> --write` · "
             f"eval config `{first['eval_config']}` · real splits ({first['users']:,} users, {first['items']:,} items), "
             "random 4-token SIDs of a trained tokenizer's shape. Each column is one profile: "
             + "; ".join(f"**{k}** {v['measured_at']}, commit {v['commit']}, {v['machine']}, precision {v['precision']}, "
                         f"load {v['load_average_1min_start']:.1f} -> {v['load_average_1min_end']:.1f}"
                         f"{' (CONTENDED: not a speed claim)' if v['contended'] else ''}" for k, v in stored.items()), "",
             "| phase | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for phase in first["projected_row_seconds"]:
        lines.append(f"| {phase} | " + " | ".join(f"{stored[k]['projected_row_seconds'][phase] / 60:.1f} min"
                                                  for k in labels) + " |")
    lines.append("| **row total** | " + " | ".join(f"**{stored[k]['projected_row_total_seconds'] / 60:.1f} min**"
                                                  for k in labels) + " |")
    rows = [("generator epoch (wall)", lambda r: f"{r['generator']['epoch_seconds']:.1f} s"),
            ("generator FLOPs per epoch", lambda r: f"{r['generator']['epoch_flops'] / 1e12:.2f} TFLOP"),
            ("achieved GFLOP/s (share of the matmul peak)",
             lambda r: f"{r['generator']['gflops_per_s']:.0f} ({100 * r['generator']['share_of_peak']:.0f}%)"),
            ("matmul peak fp32 / bf16 (2048^3)",
             lambda r: f"{r['peak_gflops']['fp32 2048^3']:.0f} / {r['peak_gflops']['bf16 2048^3']:.0f} GFLOP/s"),
            ("validation beam (users/s)", lambda r: f"{r['valid_beam_users_per_s']:.0f}"),
            ("test beam (users/s)", lambda r: f"{r['test_beam_users_per_s']:.0f}"),
            ("DIN epoch", lambda r: f"{r['din']['epoch_seconds']:.1f} s")]
    for name, fn in rows:
        lines.append(f"| {name} | " + " | ".join(fn(stored[k]) for k in labels) + " |")
    lines += ["", "Generator epoch by operator (torch.profiler self CPU time, share of the epoch):", "",
              "| operator group | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    cats = list(dict.fromkeys(c for k in labels for c in stored[k]["generator"]["breakdown_share"]))
    for c in cats:
        lines.append(f"| {c} | " + " | ".join(f"{100 * stored[k]['generator']['breakdown_share'].get(c, 0):.0f}%"
                                              for k in labels) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
