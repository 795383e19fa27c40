"""Non-generative reference rows for the downstream tables, on a tokenizer version's own splits and under the
protocol's history rule: most popular items, last-3-items transitions, and an item-ID SASRec (full-softmax CE).
Used by benchmarks/downstream_table.py."""

from __future__ import annotations

import time


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
    from collections import Counter

    from sidkit.retrieval.transitions import TransitionPrior

    longest = max((len(h) for h in test_hist), default=0)
    popular = [i for i, _ in Counter(i for s in train for i in s).most_common(20 + longest)]
    prior = TransitionPrior(train, [(h[-1], t) for h, t in zip(valid_hist, valid_tgt) if h], last=3, decay=0.5)

    def follow(h: list[int]) -> list[int]:
        seen = set(h) if exclude_history else set()
        ranked = prior.top(h, 20, seen)
        return ranked + [p for p in popular if p not in ranked and p not in seen][:20 - len(ranked)]

    def most_popular(h: list[int]) -> list[int]:
        seen = set(h) if exclude_history else set()
        return [p for p in popular if p not in seen][:20]

    rule = "same splits, history excluded" if exclude_history else "same splits"
    return {f"most popular ({rule})": [most_popular(h) for h in test_hist],
            f"last-3-items transitions ({rule})": [follow(h) for h in test_hist]}


# the reference's settings (2 layers, d 64, dropout 0.3 on the inputs, 20 items of history, batch 128); the
# tuning script (benchmarks/sasrec_tuning.py) varies them, chosen on validation
SASREC_REFERENCE = {"dim": 64, "max_len": 20, "dropout": 0.3, "batch_size": 128}


def sasrec_reference(model: str, version: str, epochs: int = 200, patience: int = 3, seed: int = 0,
                     exclude_history: bool = False, settings: dict | None = None) -> dict:
    """An item-ID sequential model on the same splits, for calibration: SASRec (``SASREC_REFERENCE``, or
    ``settings``) trained with full-softmax cross-entropy over all items on the training split, early-stopped on
    validation Recall@10 (5,000 users, every 5 epochs), full ranking of the test users (``exclude_history``: the
    user's history items masked, as the protocol's generators do). The TIGER paper reports SASRec at R@10 0.0605
    on Beauty."""
    return train_sasrec_reference(reference_splits(model, version), settings or SASREC_REFERENCE, epochs=epochs,
                                  patience=patience, seed=seed, exclude_history=exclude_history)


def reference_splits(model: str, version: str):
    """The model version's splits, items indexed (``IndexedSplits``)."""
    from zenml.client import Client

    from sidkit.evaluation.downstream import IndexedSplits

    mv = Client().get_model_version(model, version)
    return IndexedSplits.build(mv.get_artifact("sid_table").load(), mv.get_artifact("splits").load())


def train_sasrec_reference(d, settings: dict, epochs: int = 200, patience: int = 3, seed: int = 0,
                           exclude_history: bool = False, test: bool = True) -> dict:
    """Train one SASRec (``SASRecConfig`` fields in ``settings``) on ``d.train``, early-stopped on validation R@10;
    with ``test`` also rank the test users. ``test=False`` is for choosing settings: the test split is not read."""
    rank, record = fit_sasrec_reference(d, settings, epochs, patience, seed, exclude_history)
    return {**(test_metrics(rank, d) if test else {}), **record}


def test_metrics(rank, d) -> dict:
    """Retrieval metrics of a fitted reference (``fit_sasrec_reference``'s ranker) on the test users: the one
    place the test split is read."""
    import numpy as np

    from sidkit.retrieval.metrics import retrieval_metrics, target_ranks

    return retrieval_metrics(np.asarray(target_ranks(rank(d.test_hist), d.test_tgt)))


def fit_sasrec_reference(d, settings: dict, epochs: int = 200, patience: int = 3, seed: int = 0,
                         exclude_history: bool = False):
    """``train_sasrec_reference`` without the test: (ranker, record). The ranker maps histories to their top 20
    item rows under the best validation weights, so a setting chosen among several is scored on test by
    ``test_metrics`` without being trained again."""
    import numpy as np
    import torch

    from sidkit.features.behaviour import SASRec, SASRecConfig, _length_bucketed_batches, _windows, sasrec_loss
    from sidkit.retrieval.metrics import retrieval_metrics, target_ranks
    from sidkit.utils import torch_generator

    n = len(d.item_ids)
    cfg = SASRecConfig(**{**settings, "seed": seed})
    torch.manual_seed(seed)
    g = torch_generator(seed)
    net = SASRec(n, cfg)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.98))
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
            loss = sasrec_loss(net, net(x[:, -w:]), y[:, -w:], "ce", g)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 5 == 4:
            r10 = retrieval_metrics(np.asarray(target_ranks(top20(d.valid_hist[:5000]), d.valid_tgt[:5000])))["recall@10"]
            best, best_state, bad = (r10, {k: v.clone() for k, v in net.state_dict().items()}, 0) if r10 > best else (best, best_state, bad + 1)
            if bad >= patience:
                break
    net.load_state_dict(best_state)
    return top20, {"epochs": epoch + 1, "train_seconds": time.perf_counter() - t0, "valid_recall10": best,
                   "exclude_history": exclude_history, "threads": torch.get_num_threads(), "settings": dict(settings)}
