"""The decoder feed-forward and a whole generator training step, chunked vs the ordinary path, in one process.

The Beauty generator's decoder feed-forward (128 -> 4096 -> 128) runs on every SID position of every target;
under bf16 autocast it used to take the ordinary path (one rows x 4096 intermediate streamed through memory,
weights cast per call by autocast). ``sidkit.retrieval.feedforward`` now also chunks it in bf16. This script
times, with medians and both variants measured alternately in the same process (so load drifts hit both):

* one feed-forward step (forward + backward) at the decoder's shape, 3,600 and 10,000 rows;
* one whole training step of the item-level generator with ``configs/eval_beauty.yaml``'s retrieval settings
  (d_model 128, 2 encoder layers, decoder_d_ff 4096, batch 128 windows of 21 items, 4-token SIDs).

    python benchmarks/feedforward_speed.py [--precision auto|fp32|bf16] [--write]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import git_rev, machine, now, save_json, update_block, wait_for_quiet  # noqa: E402


def _alternating(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each callable, run in turns (a, b, a, b, ...) after one warm-up each."""
    import statistics

    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    import numpy as np
    import torch
    import torch.nn.functional as F
    import yaml

    from sidkit.precision import autocast, cpu_isa, resolve
    from sidkit.retrieval.feedforward import FeedForward
    from sidkit.retrieval.generator import BOS, GeneratorConfig, ItemHistoryGenerator, SIDVocabulary, max_tokens
    from sidkit.retrieval.config import IGNORE

    precision = resolve(args.precision)
    load_start, quiet = wait_for_quiet()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    def switch(chunked: bool):
        def run(fn):
            def wrapped():
                FeedForward.chunked = chunked
                try:
                    fn()
                finally:
                    FeedForward.chunked = True
            return wrapped
        return run

    results: dict = {"precision": precision}
    ff = FeedForward(128, 4096)
    for rows in (3600, 10000):
        x = torch.randn(rows, 128, requires_grad=True)

        def ff_step():
            with autocast(precision):
                out = ff(x)
            out.float().sum().backward()

        r = _alternating({"chunked": switch(True)(ff_step), "ordinary": switch(False)(ff_step)}, 15)
        results[f"ff_{rows}"] = r
        print(rows, r, flush=True)

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "eval_beauty.yaml").read_text())
    cfg = GeneratorConfig(**{**params["parameters"]["retrieval"], "precision": precision})
    sids = np.unique(np.concatenate([rng.integers(0, 256, (12101, 3)), np.zeros((12101, 1), int)], 1), axis=0)
    vocab = SIDVocabulary.from_sids(sids)
    model = ItemHistoryGenerator(vocab, max_tokens(cfg, vocab.length), cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    items = sids[rng.integers(0, len(sids), (cfg.batch_size, cfg.max_history + 1))]
    x = torch.as_tensor(np.concatenate([np.full((cfg.batch_size, 1), BOS),
                                        vocab.tokens(items.reshape(-1, 4)).reshape(cfg.batch_size, -1)], 1))

    def train_step():
        model.train()
        with autocast(precision):
            logits, target = model(x, compact=True)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE)
        opt.zero_grad()
        loss.backward()
        opt.step()

    r = _alternating({"chunked": switch(True)(train_step), "ordinary": switch(False)(train_step)}, 15)
    results["generator_step"] = r
    print("generator step", r, flush=True)
    load_end = round(os.getloadavg()[0], 2)
    meta = {"date": now(), "machine": machine(), "isa": cpu_isa(), "commit": git_rev(), "load_start": load_start,
            "load_end": load_end, "contended": not quiet, "results": results}
    save_json(f"feedforward_speed_{precision}", meta)
    lines = [f"### Decoder feed-forward, chunked vs ordinary ({precision})\n",
             f"{meta['date']} · {meta['machine']} · commit {meta['commit']} · load {load_start} -> {load_end}"
             f"{' (contended)' if not quiet else ''} · `python benchmarks/feedforward_speed.py --precision {args.precision} "
             "--write` · medians of 15, the two variants alternating in one process.\n",
             "| measured | chunked | ordinary | ordinary / chunked |", "|---|---:|---:|---:|"]
    for key, label in (("ff_3600", "feed-forward step 128-4096-128, 3,600 rows"),
                       ("ff_10000", "feed-forward step 128-4096-128, 10,000 rows"),
                       ("generator_step", "generator training step (eval_beauty.yaml, batch 128)")):
        r = results[key]
        lines.append(f"| {label} | {r['chunked'] * 1e3:.1f} ms | {r['ordinary'] * 1e3:.1f} ms | "
                     f"{r['ordinary'] / r['chunked']:.2f}x |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.write:
        update_block(f"feedforward-speed-{precision}", table)


if __name__ == "__main__":
    main()
