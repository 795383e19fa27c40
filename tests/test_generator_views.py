"""The generator's views (MACRec's generator side): per-view tries, multi-view tasks, the dual-view ensemble."""

import numpy as np
import pytest
import torch

from sidkit.retrieval.generator import (
    BOS,
    PAD,
    GeneratorConfig,
    SIDVocabulary,
    generate_ranked,
    train_generator,
)
from sidkit.retrieval.metrics import recall_at_k, target_ranks


def _two_view_walks(seed: int = 0):
    """Items with a 2-view SID (view 0: positions 0-1, view 1: positions 2-3); a planted successor map."""
    rng = np.random.default_rng(seed)
    n_items = 48
    sids = np.stack([np.arange(n_items) // 8, np.arange(n_items) % 8,
                     rng.permutation(n_items) // 8, rng.permutation(n_items) % 8], 1)
    successor = rng.permutation(n_items)
    users = []
    for _ in range(300):
        s = [int(rng.integers(n_items))]
        for _ in range(int(rng.integers(5, 10))):
            s.append(int(successor[s[-1]]) if rng.random() < 0.9 else int(rng.integers(n_items)))
        users.append(s)
    return sids, users


def test_view_index_maps_shared_view_sids_to_every_item():
    from sidkit.retrieval.generator import ViewIndex

    sids = np.array([[0, 1, 5], [0, 1, 6], [2, 0, 5]])
    index = ViewIndex.build(sids, [0, 1])
    assert sorted(map(sorted, index.items)) == [[0, 1], [2]]
    assert index.items[index.trie.item((0, 1))] == [0, 1]
    # a view SID is only excluded from the beam once every item behind it is in the history
    assert index.fully_covered({0}) == set() and index.fully_covered({0, 1, 2}) == {(0, 1), (2, 0)}


@pytest.mark.parametrize("scope", ["items", "histories"])
def test_multi_view_loss_shares_each_views_encoding_and_equals_the_per_task_sum(scope):
    """One encoder pass per view feeds every task reading it (and a history-scope alignment); the loss and
    its gradients equal the plain sum of task_logits losses + weight x alignment_loss (no dropout)."""
    from sidkit.retrieval.generator import ItemHistoryGenerator, task_loss, view_tasks

    torch.manual_seed(0)
    sids, users = _two_view_walks()
    vocab = SIDVocabulary.from_sids(sids)
    cfg = GeneratorConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.0, max_history=6)
    views = [[0, 1], [2, 3]]
    model = ItemHistoryGenerator(vocab, 1 + 7 * 4, cfg, views)
    rows = np.array([u[:7] for u in users if len(u) >= 7][:5])
    tokens = torch.cat([torch.full((5, 1), BOS), torch.tensor(vocab.tokens(sids)[rows].reshape(5, -1))], 1)
    tokens[0, 1:9] = PAD                                                   # a left-padded row: 5 items
    tasks = view_tasks(cfg, 2)
    assert len(tasks) == 6
    calls = []
    encode = model._encode_items
    model._encode_items = lambda items, view: calls.append((tuple(items.shape), view)) or encode(items, view)
    shared = model.multi_view_loss(tokens, tasks, implicit_alignment=0.5, alignment_scope=scope)
    assert [c for c in calls if c[0][1:] == (7, 4)] == [((5, 7, 4), 0), ((5, 7, 4), 1)]   # one history pass per view
    shared.backward()
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    plain = (sum(task_loss(*model.task_logits(tokens, *t)) for t in tasks)
             + 0.5 * model.alignment_loss(tokens, scope=scope))
    plain.backward()
    assert torch.allclose(shared, plain, atol=1e-5)
    for g, p in zip(grads, model.parameters()):
        assert (g is None) == (p.grad is None) and (g is None or torch.allclose(g, p.grad, atol=1e-5))


def test_item_alignment_pairs_each_distinct_item_with_itself_across_views():
    """Item scope (MACRec's official code): one item's view-0 encoding against its own view-1 encoding, the
    batch's other distinct items as negatives. A popular item repeated across rows is one pair, never its own
    negative: the loss depends on the set of distinct items only, not on rows, order or padding."""
    from sidkit.retrieval.generator import ItemHistoryGenerator

    torch.manual_seed(0)
    sids, users = _two_view_walks()
    vocab = SIDVocabulary.from_sids(sids)
    cfg = GeneratorConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0, max_history=6)
    model = ItemHistoryGenerator(vocab, 1 + 7 * 4, cfg, [[0, 1], [2, 3]])
    tok = torch.tensor(vocab.tokens(sids))

    def rows(*item_lists):
        width = max(map(len, item_lists))
        out = torch.full((len(item_lists), 1 + 4 * width), PAD)
        for r, items in enumerate(item_lists):
            out[r, 4 * (width - len(items))] = BOS
            out[r, 1 + 4 * (width - len(items)):] = tok[items].reshape(-1)
        return out

    base = model.alignment_loss(rows([3, 7, 11], [20, 21]), scope="items")
    same_set = model.alignment_loss(rows([21, 3], [3, 3, 7, 20, 11], [11]), scope="items")
    assert torch.allclose(base, same_set, atol=1e-6)
    assert not torch.allclose(base, model.alignment_loss(rows([3, 7, 11], [20, 22]), scope="items"))
    # the pair is (view 0 of item i, view 1 of item i): with 5 distinct items, chance is log(5)
    assert torch.isfinite(base) and base.item() > 0
    assert model.alignment_loss(rows([5, 5]), scope="items").item() == 0.0     # one distinct item: no negatives


def test_alignment_scope_enters_the_protocol_hash_only_when_set_away_from_its_default():
    from sidkit.evaluation.downstream import eval_config_sha256
    from sidkit.ranking.din import RankerConfig

    ranking = RankerConfig()
    default = eval_config_sha256(GeneratorConfig(), ranking)
    assert eval_config_sha256(GeneratorConfig(implicit_alignment_scope="items"), ranking) == default
    assert eval_config_sha256(GeneratorConfig(implicit_alignment_scope="histories"), ranking) != default


@pytest.mark.slow
def test_multi_view_generator_learns_and_each_switch_runs():
    """MACRec generator side on planted data: multi-aspect tasks + implicit alignment + dual-view
    ensemble beat popularity; each part switched off still trains and ranks real items."""
    sids, users = _two_view_walks()
    n_items = len(sids)
    train = [u[:-2] for u in users]
    valid = ([u[:-2] for u in users[:60]], [u[-2] for u in users[:60]])
    test_hist, test_tgt = [u[:-1] for u in users], [u[-1] for u in users]
    views = [[0, 1], [2, 3]]
    pop = np.bincount([i for s in train for i in s], minlength=n_items).argsort()[::-1][:10].tolist()
    pop_r10 = recall_at_k(target_ranks([pop] * len(test_tgt), test_tgt), 10)
    base = dict(d_model=32, n_layers=2, n_heads=2, d_ff=64, epochs=25, batch_size=32, lr=3e-3,
                beam_size=10, max_history=8, dropout=0.0, patience=100, valid_every=5)
    # the full model must learn (25 epochs); each switch only has to train and rank real items (3 epochs)
    for extra in ({}, {"view_tasks": ["next"], "implicit_alignment": 0.0, "epochs": 3},
                  {"ensemble_bonus": None, "epochs": 3}, {"implicit_alignment_scope": "histories", "epochs": 3}):
        cfg = GeneratorConfig(**{**base, **extra})
        model, vocab, _ = train_generator(train, sids, cfg, valid=valid, views=views)
        items = generate_ranked(model, vocab, sids, test_hist, cfg, views)
        assert all(0 <= i < n_items for r in items for i in r)
        if not extra:
            assert recall_at_k(target_ranks(items, test_tgt), 10) > 2 * pop_r10 + 0.1


def test_dual_view_ensemble_rewards_items_both_views_find():
    """Item 1 is second in each view but found by both: mean + bonus puts it first."""
    from sidkit.retrieval.generator import ItemDecodeState, ItemHistoryGenerator

    sids = np.array([[0, 0], [1, 1], [2, 2]])          # view 0: position 0, view 1: position 1
    vocab = SIDVocabulary.from_sids(sids)              # tokens: pos0 -> 2..4, pos1 -> 5..7
    cfg = GeneratorConfig(beam_size=3, ensemble_bonus=1.0)

    class Fixed(ItemHistoryGenerator):
        def start(self, tokens, task=(0, 0, "next")):
            logits = torch.full((tokens.shape[0], vocab.size), -30.0)
            best = {0: [2, 3, 4], 1: [7, 6, 5]}[task[0]]       # view 0 prefers item 0, view 1 item 2
            for rank, tok in enumerate(best):
                logits[:, tok] = -float(rank)
            B = tokens.shape[0]
            return logits, ItemDecodeState(torch.zeros(B, 1), torch.zeros(B, 0, dtype=torch.long), task)

    model = Fixed(vocab, 1 + 3 * 2, GeneratorConfig(d_model=8, n_layers=1, n_heads=1, d_ff=8), [[0], [1]])
    single: dict = {}
    ranked = generate_ranked(model, vocab, sids, [[0, 1]], cfg, [[0], [1]], single_view=single)
    assert ranked[0][0] == 1
    no_bonus = generate_ranked(model, vocab, sids, [[0, 1]], cfg.model_copy(update={"ensemble_bonus": None}),
                               [[0], [1]])
    assert no_bonus[0] == [0, 1, 2]                     # view 0's beams only
    # the same beams give each view's own ranking: view 0's is exactly the ensemble switched off
    assert single == {0: no_bonus, 1: [[2, 1, 0]]}
    untouched: dict = {}
    generate_ranked(model, vocab, sids, [[0, 1]], cfg.model_copy(update={"ensemble_bonus": None}), [[0], [1]],
                    single_view=untouched)
    assert untouched == {}                              # no ensemble ran: nothing to ablate


def test_a_multi_view_evaluation_reports_each_views_own_ranking():
    """evaluate_retrieval on a MACRec-layout SID: besides the ensemble's ranks, each view's beams alone (the "no
    ensemble" ablation of the same generator), named by modality, as metrics and per-user ranks."""
    import polars as pl

    from sidkit.data.splits import leave_one_out
    from sidkit.evaluation.downstream import evaluate_retrieval
    from sidkit.retrieval.metrics import retrieval_metrics
    from sidkit.sids.table import build_sid_table

    sids, users = _two_view_walks()
    ids = [f"m{i}" for i in range(len(sids))]
    inter = pl.DataFrame([{"user_id": f"u{u}", "item_id": ids[i], "position": p}
                          for u, seq in enumerate(users) for p, i in enumerate(seq)])
    table = build_sid_table(ids, sids, sids, "macrec", [8, 8, 8, 8], "relocate",
                            info={"experts": ["text(text)", "image(image)"], "levels": 2})
    cfg = dict(d_model=16, n_layers=1, n_heads=2, d_ff=32, epochs=2, batch_size=64, beam_size=10, max_history=8)
    per_user: list = []
    metrics, *_ = evaluate_retrieval(table, leave_one_out(inter, 8), cfg, per_user=per_user)
    views = per_user[0].view_ranks
    assert set(views) == set(metrics["single_view"]) == {"text", "image"}
    for name, ranks in views.items():
        assert len(ranks) == metrics["n_users"] == len(per_user[0].ranks)
        assert metrics["single_view"][name]["recall@10"] == pytest.approx(retrieval_metrics(ranks, (10,))["recall@10"])
    assert any((views[v] != per_user[0].ranks).any() for v in views)   # the ensemble is not either view alone
    # no ensemble configured: nothing to ablate, no single-view results
    metrics, *_ = evaluate_retrieval(table, leave_one_out(inter, 8), {**cfg, "ensemble_bonus": None})
    assert "single_view" not in metrics
