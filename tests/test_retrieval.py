"""Generative retrieval: the trie, beam search on a toy model, the generators, a planted-signal run.
(Metrics, intervals and the protocol hash: test_retrieval_metrics.py.)"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sidkit.retrieval.generator import (
    BOS,
    GeneratorConfig,
    SIDVocabulary,
    beam_search,
    generate_ranked,
    train_generator,
    training_windows,
)
from sidkit.retrieval.metrics import recall_at_k, target_ranks
from sidkit.retrieval.trie import SIDTrie
from tests.conftest import planted_walks


def test_trie_allows_only_real_continuations_and_rejects_duplicates():
    trie = SIDTrie([(0, 1, 0), (0, 2, 0), (3, 1, 1)], ["a", "b", "c"])
    assert trie.allowed(()).tolist() == [0, 3]
    assert trie.allowed((0,)).tolist() == [1, 2]
    assert trie.allowed((3, 1)).tolist() == [1]
    assert trie.allowed((5,)).numel() == 0
    assert trie.item((0, 2, 0)) == "b" and trie.item((0, 2, 1)) is None
    with pytest.raises(ValueError, match="not unique"):
        SIDTrie([(0, 1), (0, 1)], ["a", "b"])


class ToyState:
    def __init__(self, last):
        self.last = last

    def select(self, rows):
        return ToyState(self.last[rows])


class ToyModel(torch.nn.Module):
    """Next-token logits depend only on the last token (a fixed table)."""

    def __init__(self, table: dict[int, list[float]], vocab_size: int):
        super().__init__()
        self.table, self.v = table, vocab_size

    def _logits(self, last):
        return torch.log(torch.tensor([self.table[t] for t in last.tolist()]))

    def start(self, tokens):
        return self._logits(tokens[:, -1]), ToyState(tokens[:, -1])

    def extend(self, state, tokens):
        return self._logits(tokens), ToyState(tokens)


def test_beam_search_finds_the_best_sequence_a_greedy_search_misses():
    vocab = SIDVocabulary([2, 2])        # tokens: pos0 codes -> 2, 3; pos1 codes -> 4, 5
    trie = SIDTrie([(0, 0), (0, 1), (1, 0)], ["a", "b", "c"])
    table = {BOS: [0, 0, 0.4, 0.6, 0, 0],   # greedy picks code 1 first ...
             2: [0, 0, 0, 0, 0.05, 0.95],   # ... but (0, 1) has 0.4 * 0.95 = 0.38
             3: [0, 0, 0, 0, 0.5, 0.5]}     # (1, 0) only 0.6 * 0.5 = 0.30 (and (1, 1) is not an item)
    model = ToyModel(table, vocab.size)
    sids, scores = beam_search(model, torch.tensor([[BOS]]), trie, vocab, beam_size=3)
    assert sids[0][0] == (0, 1)
    assert set(sids[0]) == {(0, 0), (0, 1), (1, 0)}   # never an invalid SID such as (1, 1)
    assert scores[0, 0] == pytest.approx(np.log(0.38), abs=1e-4)
    greedy, _ = beam_search(model, torch.tensor([[BOS]]), trie, vocab, beam_size=1)
    assert greedy[0] == [(1, 0)]


def test_training_windows_cover_long_sequences():
    w = training_windows([list(range(7)), [1]], max_history=3)
    assert w == [[3, 4, 5, 6], [0, 1, 2, 3]]


@pytest.mark.slow
@pytest.mark.parametrize("history", ["items", "tokens"])
def test_generator_beats_popularity_on_planted_signal(history):
    """Sequences follow a fixed successor map: the next item is learnable, popularity is not enough."""
    n_items = 60
    sids, users = planted_walks(n_items, 300, (5, 10))
    train = [u[:-2] for u in users]
    valid = ([u[:-2] for u in users[:100]], [u[-2] for u in users[:100]])
    test_hist, test_tgt = [u[:-1] for u in users], [u[-1] for u in users]
    cfg = GeneratorConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, epochs=30, batch_size=32, lr=3e-3,
                          beam_size=10, max_history=8, dropout=0.0, patience=100, history=history)
    valid_items = ([h for h in valid[0]], valid[1])
    model, vocab, hist = train_generator(train, sids, cfg, valid=valid_items)
    items = generate_ranked(model, vocab, sids, test_hist, cfg)
    assert all(0 <= i < n_items for r in items for i in r)  # every result is a real item
    ranks = target_ranks(items, test_tgt)
    pop = np.bincount([i for s in train for i in s], minlength=n_items).argsort()[::-1][:10].tolist()
    pop_ranks = target_ranks([pop] * len(test_tgt), test_tgt)
    assert recall_at_k(ranks, 10) > 2 * recall_at_k(pop_ranks, 10) + 0.1
    assert hist[-1]["loss"] < hist[0]["loss"]


def test_left_padding_does_not_change_predictions():
    from sidkit.retrieval.generator import TokenHistoryGenerator

    torch.manual_seed(0)
    cfg = GeneratorConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.0, history="tokens")
    model = TokenHistoryGenerator(20, 30, cfg).eval()
    seq = torch.tensor([[BOS, 5, 9, 3]])
    padded = torch.tensor([[0, 0, 0, BOS, 5, 9, 3], [BOS, 4, 4, 4, 8, 2, 6]])
    out = model(padded)
    assert not torch.isnan(out).any()
    torch.testing.assert_close(model(seq)[0, -1], out[0, -1], atol=1e-5, rtol=1e-5)


def test_cached_decoding_matches_a_full_forward_pass():
    """extend() with cached keys/values gives the logits of re-running the whole (left-padded) sequence."""
    from sidkit.retrieval.generator import TokenHistoryGenerator

    torch.manual_seed(0)
    cfg = GeneratorConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.0, history="tokens")
    model = TokenHistoryGenerator(20, 30, cfg, sid_length=2).eval()
    model.forward = lambda tokens: model.start(tokens, keep_all=True)[0]   # logits at every position
    hist = torch.tensor([[0, 0, BOS, 5, 9], [BOS, 4, 4, 8, 2]])
    _, state = model.start(hist)
    nxt = torch.tensor([3, 7])
    got, state = model.extend(state, nxt)
    torch.testing.assert_close(got, model(torch.cat([hist, nxt[:, None]], 1))[:, -1], atol=1e-5, rtol=1e-5)
    state = state.select(torch.tensor([0, 0, 1, 1]))    # two beams per user
    new = torch.tensor([6, 11, 12, 13])
    got, state = model.extend(state, new)
    seqs = torch.cat([hist[[0, 0, 1, 1]], nxt[[0, 0, 1, 1], None], new[:, None]], 1)
    torch.testing.assert_close(got, model(seqs)[:, -1], atol=1e-5, rtol=1e-5)
    state = state.select(torch.tensor([1, 0, 3, 3]))    # beams reordered and duplicated within each user
    got, _ = model.extend(state, torch.tensor([4, 5, 7, 8]))
    seqs = torch.cat([seqs[[1, 0, 3, 3]], torch.tensor([[4], [5], [7], [8]])], 1)
    torch.testing.assert_close(got, model(seqs)[:, -1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("item_input", [{}, {"prefix_ngram_buckets": 16}, {"decoder_d_ff": 8},
                                        {"cross_attention": False, "tie_item_embeddings": True}])
def test_item_level_decoding_matches_the_training_forward_pass(item_input):
    """start/extend (beam search) give the logits the training pass gives the same item, padded or not
    (default: decoder cross-attending to the encoded history, separate item table; also with hashed
    SID-prefix embeddings, and with a decoder that sees only the last state and output-tied items)."""
    from sidkit.retrieval.generator import ItemHistoryGenerator, SIDVocabulary

    torch.manual_seed(0)
    cfg = GeneratorConfig(d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.0, decoder_layers=2, **item_input)
    model = ItemHistoryGenerator(SIDVocabulary([8, 10]), 1 + 4 * 2, cfg).eval()
    assert model.decoder[0].ff[0].out_features == item_input.get("decoder_d_ff", 32)
    # vocab: codes of position 0 -> tokens 2..9, position 1 -> 10..19
    rows = torch.tensor([[0, 0, BOS, 3, 12, 5, 17],      # 2 history items + target (5, 17), left-padded
                         [BOS, 2, 10, 9, 11, 4, 19]])    # 3 items, target (4, 19)
    full = model(rows)                                   # predicts rows[:, 1:]
    assert full.shape == (2, 6, 20) and not torch.isnan(full).any()
    # each position scores only its own SID position's codes
    assert torch.isinf(full[:, 2, 10:]).all() and torch.isfinite(full[:, 2, 2:10]).all()
    assert torch.isinf(full[:, 3, :10]).all() and torch.isfinite(full[:, 3, 10:]).all()
    first, state = model.start(rows[:, :-2])             # the history without the target
    torch.testing.assert_close(first, full[:, -2], atol=1e-5, rtol=1e-5)
    state = state.select(torch.tensor([0, 0, 1]))        # beams: user 0 twice, user 1 once
    second, _ = model.extend(state, torch.tensor([5, 7, 4]))
    torch.testing.assert_close(second[[0, 2]], full[:, -1], atol=1e-5, rtol=1e-5)
    # padding does not change the prediction: user 0 alone, unpadded
    torch.testing.assert_close(model(rows[:1, 2:])[0], full[0, 2:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cross_attention", [True, False])
def test_item_level_cached_decoding_survives_beam_reordering(cross_attention):
    """Beam search decodes one position per step against cached decoder keys/values; after rows are
    reordered and duplicated between steps, every row's logits still equal the training pass on its
    own prefix (3-token SIDs, 2 decoder layers, two users with different histories)."""
    from sidkit.retrieval.generator import ItemHistoryGenerator, SIDVocabulary

    torch.manual_seed(1)
    cfg = GeneratorConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0, decoder_layers=2,
                          cross_attention=cross_attention)
    model = ItemHistoryGenerator(SIDVocabulary([4, 5, 3]), 1 + 4 * 3, cfg).eval()
    # tokens: position 0 -> 2..5, position 1 -> 6..10, position 2 -> 11..13
    hist = torch.tensor([[0, 0, 0, BOS, 3, 7, 12],
                         [BOS, 2, 6, 11, 5, 10, 13]])
    targets = {0: [4, 8, 11], 1: [2, 9, 13], 2: [5, 6, 12]}     # row -> SID it will follow
    owners = [0, 1, 0]                                           # rows 0 and 2 belong to user 0
    logits, state = model.start(hist)
    state = state.select(torch.tensor(owners))
    logits, state = model.extend(state, torch.tensor([targets[r][0] for r in range(3)]))
    state = state.select(torch.tensor([2, 1, 0]))                # reorder the beams
    order = [2, 1, 0]
    logits, state = model.extend(state, torch.tensor([targets[r][1] for r in order]))
    for row, r in enumerate(order):
        full = model(torch.cat([hist[owners[r]], torch.tensor(targets[r])])[None])[0]
        torch.testing.assert_close(logits[row], full[-1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("views", [None, [[0], [1]]])
def test_excluded_history_items_take_no_beam_slot(views):
    """exclude_history masks the history's items inside the beam search: with a beam as wide as the
    unseen part of the catalogue, the ranking is exactly the unseen items (a filter applied after the
    search would leave gaps wherever the model ranked a history item)."""
    from sidkit.retrieval.generator import ItemHistoryGenerator

    torch.manual_seed(0)
    sids = np.array([[a, b] for a in range(3) for b in range(3)])      # 9 items
    vocab = SIDVocabulary.from_sids(sids)
    cfg = GeneratorConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0, beam_size=6,
                          exclude_history=True, ensemble_bonus=1.0)
    model = ItemHistoryGenerator(vocab, 1 + 21 * 2, cfg, views).eval()
    histories = [[0, 4, 8], [1, 2, 3], [5, 6, 7], [2, 4, 6]]
    ranked = generate_ranked(model, vocab, sids, histories, cfg, views)
    for h, r in zip(histories, ranked):
        if views is None:
            assert sorted(r) == sorted(set(range(9)) - set(h))
        else:   # per-view SIDs are shared by 3 items each: unseen items only, none lost to a history item
            assert r and not set(r) & set(h)
    plain = generate_ranked(model, vocab, sids, histories, cfg.model_copy(update={"exclude_history": False}), views)
    assert any(set(r) & set(h) for h, r in zip(histories, plain))      # the model does rank history items


def test_a_beam_as_wide_as_the_catalogue_ranks_every_sid_by_its_exact_log_probability():
    """The batched (tensor-trie) beam search against brute force: every catalogue SID scored by the
    training forward pass (teacher forcing). A beam at least as wide as the catalogue must return
    exactly the catalogue's SIDs, minus each user's excluded ones, in that order with those scores
    (users with different histories in one batch, unequal codebooks, a sparse trie)."""
    from sidkit.retrieval.generator import ItemHistoryGenerator, pad_left, sequences_to_tokens

    torch.manual_seed(3)
    rng = np.random.default_rng(3)
    grid = np.array([[a, b, c] for a in range(4) for b in range(5) for c in range(3)])
    sids = grid[np.sort(rng.choice(len(grid), 25, replace=False))]       # 25 of 60 prefixes exist
    vocab = SIDVocabulary.from_sids(sids)
    trie = SIDTrie(sids.tolist(), list(range(len(sids))))
    cfg = GeneratorConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0, decoder_layers=2)
    model = ItemHistoryGenerator(vocab, 1 + 6 * 3, cfg).eval()
    tokens = vocab.tokens(sids)
    histories = [[0, 4, 9], [3], [7, 1, 2, 24, 11]]
    exclude = [{tuple(sids[4]), tuple(sids[20])}, set(), {tuple(sids[0])}]
    batch = pad_left(sequences_to_tokens(histories, tokens, 5))
    got, scores = beam_search(model, batch, trie, vocab, beam_size=40, exclude=exclude)
    for u, hist in enumerate(histories):
        rows = pad_left(sequences_to_tokens([hist + [i] for i in range(len(sids))], tokens, 6))
        logp = torch.log_softmax(model(rows)[:, -3:], -1)                  # the target item's 3 positions
        exact = logp.gather(2, rows[:, -3:, None])[..., 0].sum(1)
        order = [i for i in torch.argsort(exact, descending=True, stable=True).tolist()
                 if tuple(sids[i]) not in exclude[u]]
        assert got[u] == [tuple(int(c) for c in sids[i]) for i in order]
        torch.testing.assert_close(scores[u, :len(order)], exact[order], atol=1e-4, rtol=1e-4)
        assert torch.isinf(scores[u, len(order):]).all()


def test_weight_average_tracks_the_ema_and_swaps_the_live_weights_back():
    from sidkit.retrieval.generator import WeightAverage

    net = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    avg = WeightAverage(net, decay=0.5)
    expected = 0.0
    for step, value in enumerate([1.0, 2.0, 4.0, 8.0]):
        with torch.no_grad():
            net.weight.fill_(value)
        avg.update(net, step + 100)   # past the warm-up ramp: decay 0.5
        expected = 0.5 * expected + 0.5 * value
    assert torch.allclose(avg.shadow["weight"], torch.full((1, 2), expected))
    with avg.swapped_in(net):
        assert torch.allclose(net.weight, torch.full((1, 2), expected))
    assert torch.allclose(net.weight, torch.full((1, 2), 8.0))   # live weights back
    ramp = WeightAverage(net, decay=0.999)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ramp.update(net, 0)   # first step: decay (1 + 0) / (10 + 0) = 0.1, so the average moves 90% to the new weights
    assert torch.allclose(ramp.shadow["weight"], torch.full((1, 2), 0.8))


def test_generator_with_weight_average_returns_the_selected_average():
    """With ema_decay the validated and returned weights are the average, not the last live ones."""
    rng = np.random.default_rng(1)
    sids = np.stack([np.arange(24) // 6, np.arange(24) % 6], 1)
    users = [[int(x) for x in rng.integers(0, 24, 7)] for _ in range(40)]
    train, valid = [u[:-2] for u in users], ([u[:-2] for u in users], [u[-2] for u in users])
    base = dict(d_model=16, n_layers=1, n_heads=2, d_ff=32, epochs=3, batch_size=16, lr=3e-3, beam_size=5,
                max_history=6, patience=100)
    plain, _, _ = train_generator(train, sids, GeneratorConfig(**base), valid=valid)
    averaged, _, hist = train_generator(train, sids, GeneratorConfig(**base, ema_decay=0.9), valid=valid)
    again, _, _ = train_generator(train, sids, GeneratorConfig(**base, ema_decay=0.9), valid=valid)
    assert all("valid_recall@10" in h for h in hist)
    p, a, b = plain.state_dict(), averaged.state_dict(), again.state_dict()
    assert any(not torch.equal(p[k], a[k]) for k in p)        # the average differs from the live weights
    assert all(torch.equal(a[k], b[k]) for k in a)            # and is reproducible


def test_compact_training_logits_give_the_full_vocabulary_loss():
    """Training scores each SID position over its own codebook only; the loss equals the cross-entropy
    over the whole vocabulary (whose other columns are -inf), left-padded rows included."""
    from sidkit.retrieval.generator import IGNORE, N_SPECIAL, ItemHistoryGenerator

    torch.manual_seed(0)
    vocab = SIDVocabulary([8, 10, 3])
    model = ItemHistoryGenerator(vocab, 1 + 4 * 3, GeneratorConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32,
                                                                    dropout=0.0)).eval()
    rows = torch.tensor([[0, 0, 0, BOS, 3, 12, 20, 5, 17, 21],
                         [BOS, 2, 10, 22, 9, 11, 20, 4, 19, 21]])
    full = model(rows)
    target = rows[:, 1:].masked_fill(rows[:, 1:] < N_SPECIAL, IGNORE)
    expected = F.cross_entropy(full.reshape(-1, full.shape[-1]), target.reshape(-1), ignore_index=IGNORE)
    logits, compact_target = model(rows, compact=True)
    assert logits.shape == (2, 9, 10)                                  # the widest codebook, not the vocabulary
    got = F.cross_entropy(logits.reshape(-1, 10), compact_target.reshape(-1), ignore_index=IGNORE)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
