"""SID generator speed: training step fp32 vs bf16 autocast, and beam search with the KV cache vs
re-running the whole sequence at every decoding step (the baseline, measured in the same process);
the multi-view (MACRec) training step against its per-task baseline (one encoder pass and one
full-vocabulary softmax per task).

Shapes follow Amazon Beauty: 4-token SIDs (3 x 256 codes + a collision token), histories of 20
items, beam 20. Medians of repeated runs; the machine is shared, so compare ratios.

    python benchmarks/generator_speed.py [--write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.common import git_rev, machine, median_seconds, now, save_json, update_block  # noqa: E402
from sidkit.retrieval.generator import (  # noqa: E402
    BOS,
    PAD,
    GeneratorConfig,
    ItemHistoryGenerator,
    SIDVocabulary,
    TokenHistoryGenerator,
    task_loss,
    beam_search,
    view_tasks,
)
from sidkit.retrieval.trie import SIDTrie  # noqa: E402


class _NoCache:
    """The baseline: every decoding step re-runs the model over history + generated prefix."""

    def __init__(self, model):
        self.model = model

    def eval(self):
        return self

    def start(self, tokens):
        return self.model.start(tokens)[0], _Seqs(tokens)

    def extend(self, state, tokens):
        seqs = torch.cat([state.seqs, tokens[:, None]], 1)
        return self.model.start(seqs)[0], _Seqs(seqs)


class _Seqs:
    def __init__(self, seqs):
        self.seqs = seqs

    def select(self, rows):
        return _Seqs(self.seqs[rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n_items, sid_len = 12101, 4
    sids = np.concatenate([rng.integers(0, 256, (n_items, 3)), np.zeros((n_items, 1), int)], 1)
    sids = np.unique(sids, axis=0)
    vocab = SIDVocabulary.from_sids(sids)
    trie = SIDTrie(sids.tolist(), list(range(len(sids))))
    results = {}
    for layers in (2, 4):
        cfg = GeneratorConfig(n_layers=layers, dropout=0.1, history="tokens")
        model = TokenHistoryGenerator(vocab.size, 1 + 21 * sid_len, cfg, sid_length=sid_len)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        # batch 64, 8-item windows of real SIDs (the item-level model scores each position's own codes)
        x = torch.as_tensor(np.concatenate([np.full((64, 1), BOS), vocab.tokens(sids[rng.integers(0, len(sids), (64, 8))].reshape(64 * 8, -1)).reshape(64, -1)], 1))

        def step(bf16: bool):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()

        fp32 = median_seconds(lambda: step(False), 15)
        bf16 = median_seconds(lambda: step(True), 15)
        hist = torch.as_tensor(rng.integers(2, vocab.size, (64, 1 + 20 * sid_len)))
        hist[:, 0] = BOS
        model.eval()
        cached = median_seconds(lambda: beam_search(model, hist, trie, vocab, 20), 3)
        naive = median_seconds(lambda: beam_search(_NoCache(model), hist, trie, vocab, 20), 3)
        results[f"{layers}_layers"] = {"train_step_fp32_s": fp32, "train_step_bf16_s": bf16,
                                       "beam_cached_users_per_s": 64 / cached, "beam_no_cache_users_per_s": 64 / naive}
        # the item-level model (history: items, the default) at the same encoder depth: one encoder
        # position per item, 1 decoder layer over the next SID; its beam search re-runs only the decoder
        item_cfg = GeneratorConfig(n_layers=layers, dropout=0.1, history="items")
        item_model = ItemHistoryGenerator(vocab, 1 + 21 * sid_len, item_cfg)
        item_opt = torch.optim.AdamW(item_model.parameters(), lr=1e-3)

        def item_step(bf16: bool = False):
            item_model.train()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = item_model(x)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), ignore_index=PAD)
            item_opt.zero_grad()
            loss.backward()
            item_opt.step()

        results[f"{layers}_layers"]["items_train_step_fp32_s"] = median_seconds(item_step, 15)
        results[f"{layers}_layers"]["items_train_step_bf16_s"] = median_seconds(lambda: item_step(True), 5)
        item_model.eval()
        results[f"{layers}_layers"]["items_beam_users_per_s"] = 64 / median_seconds(
            lambda: beam_search(item_model, hist, trie, vocab, 20), 3)
        print(layers, results[f"{layers}_layers"], flush=True)
    results["multi_view"] = multi_view_steps(rng)
    print("multi-view", results["multi_view"], flush=True)
    save_json("generator_speed", {"date": now(), "machine": machine(), "commit": git_rev(), "results": results})
    lines = ["### SID generator speed (Beauty-shaped: 4-token SIDs, 20-item histories, beam 20)\n",
             f"{now()} · {machine()} · commit {git_rev()} · `python benchmarks/generator_speed.py --write` · medians; "
             "d_model 128, 4 heads, d_ff 512; training step = batch of 64 windows of 8 items; beam search = 64 users. "
             "Token model (history: tokens) with and without KV cache; item-level model (history: items) with its "
             "encoder at the same depth and a 1-layer decoder.\n",
             "| layers | train step fp32 | train step bf16 autocast | bf16 / fp32 | beam search, KV cache | "
             "beam search, re-run per step (baseline) | speed-up | items model: train step fp32 | items: bf16 | "
             "items: beam search |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, r in results.items():
        if not key.endswith("_layers"):
            continue
        lines.append(f"| {key.split('_')[0]} | {r['train_step_fp32_s'] * 1e3:.0f} ms | {r['train_step_bf16_s'] * 1e3:.0f} ms | "
                     f"{r['train_step_bf16_s'] / r['train_step_fp32_s']:.2f}x | {r['beam_cached_users_per_s']:.0f} users/s | "
                     f"{r['beam_no_cache_users_per_s']:.0f} users/s | "
                     f"{r['beam_cached_users_per_s'] / r['beam_no_cache_users_per_s']:.1f}x | "
                     f"{r['items_train_step_fp32_s'] * 1e3:.0f} ms | {r['items_train_step_bf16_s'] * 1e3:.0f} ms | "
                     f"{r['items_beam_users_per_s']:.0f} users/s |")
    mv = results["multi_view"]
    lines += ["", "Multi-view (MACRec) training step, 2 views x 3 codes of 256, 6 tasks + implicit alignment, batch of "
              "64 windows of 21 items (MovieLens-shaped), forward + backward: per-task baseline (an encoder pass "
              f"and a full-vocabulary softmax per task) {mv['per_task_s'] * 1e3:.0f} ms, `multi_view_loss` (one "
              f"encoder pass per view, per-position codebooks) {mv['shared_s'] * 1e3:.0f} ms: "
              f"{mv['per_task_s'] / mv['shared_s']:.2f}x."]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.write:
        update_block("generator-speed", table)


def multi_view_steps(rng: np.random.Generator) -> dict:
    """Median seconds of one multi-view training step (forward + backward): the per-task baseline
    against ``multi_view_loss`` (same model, same batch, one after the other in this process)."""
    n_items = 1682
    sids = rng.integers(0, 256, (n_items, 6))         # a MACRec SID: each branch's 3 codes side by side
    vocab = SIDVocabulary.from_sids(sids)
    cfg = GeneratorConfig(dropout=0.1, history="items")
    model = ItemHistoryGenerator(vocab, 1 + 21 * vocab.length, cfg, [[0, 1, 2], [3, 4, 5]])
    tasks = view_tasks(cfg, 2)
    x = torch.as_tensor(np.concatenate([np.full((64, 1), BOS), vocab.tokens(
        sids[rng.integers(0, n_items, (64, 21))].reshape(64 * 21, -1)).reshape(64, -1)], 1))

    def per_task():
        loss = sum(task_loss(*model.task_logits(x, *t)) for t in tasks) + cfg.implicit_alignment * model.alignment_loss(x)
        loss.backward()
        model.zero_grad()

    def shared():
        model.multi_view_loss(x, tasks, cfg.implicit_alignment).backward()
        model.zero_grad()

    return {"per_task_s": median_seconds(per_task, 7), "shared_s": median_seconds(shared, 7)}


if __name__ == "__main__":
    main()
