"""Tokenizer training time per epoch and SID assignment throughput on Amazon Beauty titles.

Input: MiniLM (all-MiniLM-L6-v2) embeddings of the 12,101 Beauty titles, computed through
sidkit's feature code (and its cache, so a re-run does not re-encode). Every figure is a
median over repeats; ratios are against the baseline (RQ-VAE, fp32, straight-through)
measured in the same process, because this machine is shared and noisy.

    python benchmarks/tokenizer_speed.py [--data ../shared/data] [--repeats 5] [--write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sidkit.settings import configure_environment  # noqa: E402

configure_environment()

import numpy as np  # noqa: E402

from benchmarks.common import git_rev, machine, median_seconds, now, save_json, update_block  # noqa: E402
from sidkit.data.loaders import load_amazon_sequences  # noqa: E402
from sidkit.features import embed_catalogue  # noqa: E402
from sidkit.sids.collisions import resolve_collisions  # noqa: E402
from sidkit.tokenizers import build_tokenizer  # noqa: E402

VARIANTS = {
    "RQ-VAE fp32, STE (baseline)": {"method": "rqvae", "bf16": False, "gradient": "ste"},
    "RQ-VAE bf16 autocast, STE": {"method": "rqvae", "bf16": True, "gradient": "ste"},
    "RQ-VAE fp32, rotation trick": {"method": "rqvae", "bf16": False, "gradient": "rotation"},
    "RQ-KMeans (whole fit)": {"method": "rqkmeans"},
}
COMMON = {"levels": 3, "codebook_size": 256, "latent_dim": 32, "hidden_dims": [512, 256, 128],
          "batch_size": 1024, "eval_every": 1000, "dead_code_reset": True, "seed": 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    ap.add_argument("--skip-behaviour", action="store_true", help="only the tokenizer table")
    args = ap.parse_args()

    cat = load_amazon_sequences(Path(args.data) / "amazon-beauty")
    emb = embed_catalogue(cat, None, {"text": {"fields": ["title"]}, "image": {"enabled": False},
                                      "behaviour": {"enabled": False}})
    x = emb.matrix(["text"])
    n = len(x)
    rows = []
    base_epoch = base_assign = None
    for name, variant in VARIANTS.items():
        cfg = {**COMMON, **variant, "epochs": args.repeats + 1}
        tok = build_tokenizer(cfg, x.shape[1])
        if variant["method"] == "rqkmeans":
            epoch_s = median_seconds(lambda: build_tokenizer(cfg, x.shape[1]).fit(x), repeats=max(args.repeats // 2, 2))
            tok.fit(x)
        else:
            history = tok.fit(x)  # the first epoch is a warm-up; the rest are timed by the trainer itself
            epoch_s = float(np.median([h["seconds"] for h in history[1:]]))
        assign_s = median_seconds(lambda: tok.encode(x), repeats=args.repeats)
        enc = tok.encode(x)
        resolve_s = median_seconds(lambda: resolve_collisions(enc.codes, enc.distances, "relocate",
                                                              tok.codebook_sizes), repeats=3)
        if base_epoch is None:
            base_epoch, base_assign = epoch_s, assign_s
        rows.append({"variant": name, "epoch_s": epoch_s, "epoch_ratio": epoch_s / base_epoch,
                     "assign_items_per_s": n / assign_s, "assign_ratio": base_assign / assign_s,
                     "relocate_s": resolve_s})
        print(rows[-1], flush=True)

    header = (f"### Tokenizer speed on Amazon Beauty titles ({n:,} items x {x.shape[1]} dims, 3 x 256 codes)\n\n"
              f"{now()} · {machine()} · commit {git_rev()} · `python benchmarks/tokenizer_speed.py --write` · "
              f"medians of {args.repeats} repeats; ratios against the baseline in the same process.\n"
              "Per epoch = one pass over all items, batch 1024, MLP 384→512→256→128→32 (for RQ-KMeans: the "
              "whole 3-level fit, 50 Lloyd iterations max per level). Assignment = encoding every item "
              "(codes + per-level distances). Relocation = `relocate` collision policy on those codes.\n\n"
              "| variant | per epoch (s) | vs baseline | SID assignment (items/s) | vs baseline | relocation (s) |\n"
              "|---|---:|---:|---:|---:|---:|\n")
    table = "".join(f"| {r['variant']} | {r['epoch_s']:.3f} | {r['epoch_ratio']:.2f}x | "
                    f"{r['assign_items_per_s']:,.0f} | {r['assign_ratio']:.2f}x | {r['relocate_s']:.3f} |\n"
                    for r in rows)
    save_json("tokenizer_speed", {"date": now(), "machine": machine(), "n_items": n, "rows": rows})
    print(header + table)
    if args.write:
        update_block("tokenizer-speed", header + table)
    if not args.skip_behaviour:
        behaviour_table = behaviour_speed(cat, args.repeats)
        print(behaviour_table)
        if args.write:
            update_block("behaviour-speed", behaviour_table)


def behaviour_speed(cat, repeats: int) -> str:
    """SASRec epoch time on the Beauty training split: fp32 (baseline) vs bf16 autocast."""
    from sidkit.data.splits import leave_one_out
    from sidkit.features.behaviour import SASRecConfig, train_sasrec

    splits = leave_one_out(cat.interactions)
    ids = cat.items["item_id"].to_list()
    index = {item: k + 1 for k, item in enumerate(ids)}
    seqs = [[index[i] for i in q] for q in splits.train_sequences().values()]
    rows = []
    for name, bf16 in (("fp32 (baseline)", False), ("bf16 autocast", True)):
        times = []
        train_sasrec(seqs, len(ids), SASRecConfig(epochs=repeats, bf16=bf16),
                     on_epoch=lambda e, loss: times.append(__import__("time").perf_counter()))
        epochs = np.diff(times)  # the first epoch is the warm-up
        rows.append((name, float(np.median(epochs))))
    base = rows[0][1]
    out = (f"### Behaviour model (SASRec) on the Beauty training split ({len(seqs):,} sequences)\n\n"
           f"{now()} · {machine()} · commit {git_rev()} · median epoch over {repeats - 1} epochs after a warm-up; "
           "64-d, 2 blocks, max length 50, batch 256, length-bucketed batches trimmed to their longest sequence.\n\n"
           "| precision | per epoch (s) | vs baseline |\n|---|---:|---:|\n")
    return out + "".join(f"| {name} | {sec:.2f} | {sec / base:.2f}x |\n" for name, sec in rows)


if __name__ == "__main__":
    main()
