"""The transition prior and the labelled generator + transitions ensemble (sidkit/retrieval/hybrid.py)."""

import numpy as np
import pytest
import torch

from sidkit.retrieval.config import GeneratorConfig, SIDVocabulary
from sidkit.retrieval.decoding import beam_search, generate_ranked
from sidkit.retrieval.hybrid import Candidates, choose_weight, hybrid_candidates, mix, sid_log_probs
from sidkit.retrieval.item_model import ItemHistoryGenerator
from sidkit.retrieval.models import pad_left, sequences_to_tokens
from sidkit.retrieval.transitions import TransitionPrior
from sidkit.retrieval.trie import SIDTrie


def test_transition_prior_decays_older_items_and_leaves_out_excluded_ones():
    prior = TransitionPrior([[1, 2, 3], [2, 3], [3, 4], [1, 5]], pairs=[(3, 5)], last=2, decay=0.5)
    # history ... 2, 3: from 3 (weight 1): 4 once, 5 once (the extra pair); from 2 (weight 1/2): 3 twice
    assert prior.scores([9, 2, 3]) == {4: 1.0, 5: 1.0, 3: 1.0}
    assert prior.scores([9, 2, 3], exclude={4}) == {5: 1.0, 3: 1.0}
    dist = prior.distribution([2, 3])
    assert sum(dist.values()) == pytest.approx(1.0) and dist[4] == pytest.approx(1 / 3)
    assert prior.distribution([7]) == {} and prior.top([7], 5) == []
    assert prior.top([1], 1) == [2]                    # ties keep first-seen order
    with pytest.raises(ValueError, match="decay"):
        TransitionPrior([], decay=0.0)


def _model(seed: int = 0, cross_attention: bool = True):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    grid = np.array([[a, b, c] for a in range(4) for b in range(4) for c in range(3)])
    sids = grid[np.sort(rng.choice(len(grid), 30, replace=False))]
    vocab = SIDVocabulary.from_sids(sids)
    # fp32 pinned: `auto` is bf16 on CPUs that have it, and these tests compare scores to 1e-4, not bf16 rounding
    cfg = GeneratorConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0, beam_size=5,
                          cross_attention=cross_attention, eval_batch_size=2, precision="fp32")
    return ItemHistoryGenerator(vocab, 1 + 21 * 3, cfg).eval(), vocab, sids, cfg


@pytest.mark.parametrize("cross_attention", [True, False])
def test_teacher_forced_log_probability_equals_the_beam_score(cross_attention):
    """The hybrid scores candidates outside the beam exactly: teacher forcing must give each beam SID the very
    log-probability the beam search gave it, whatever the candidates' order and multiplicity."""
    model, vocab, sids, _ = _model(cross_attention=cross_attention)
    histories = [[0, 4, 9], [3], [7, 1, 2, 24, 11]]
    batch = pad_left(sequences_to_tokens(histories, vocab.tokens(sids), 5))
    found, scores = beam_search(model, batch, SIDTrie(sids.tolist(), list(range(len(sids)))), vocab, beam_size=8)
    cands = torch.tensor([list(reversed(f)) + [f[0]] for f in found])       # reordered, one repeated
    got = sid_log_probs(model, batch, cands, vocab)
    want = torch.cat([scores.flip(1), scores[:, :1]], 1)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_candidates_are_the_beam_and_the_prior_top_items_minus_the_history():
    model, vocab, sids, cfg = _model()
    cfg = cfg.model_copy(update={"exclude_history": True})
    train = [[i, (i + 1) % 30, (i + 2) % 30] for i in range(30)] + [[5, 17]] * 3
    prior = TransitionPrior(train)
    histories = [[4, 5], [29], [12, 13, 14]]
    cands = hybrid_candidates(model, vocab, sids, histories, cfg, prior, n_prior=2)
    beams = generate_ranked(model, vocab, sids, histories, cfg)
    batch = pad_left(sequences_to_tokens(histories, vocab.tokens(sids), cfg.max_history))
    for u, (c, h) in enumerate(zip(cands, histories)):
        assert set(prior.top(h, 2, set(h))) <= set(c.items.tolist())
        assert not set(c.items.tolist()) & set(h)
        assert c.items[:c.n_beam].tolist() == beams[u] and len(set(c.items.tolist())) == len(c.items)
        exact = sid_log_probs(model, batch[u:u + 1], torch.as_tensor(sids[c.items])[None], vocab)[0]
        np.testing.assert_allclose(c.log_gen, exact.numpy(), atol=1e-4)
        dist = prior.distribution(h, set(h))
        np.testing.assert_allclose(c.prior, [dist.get(int(i), 0.0) for i in c.items])
    assert 17 in cands[0].items          # 5 -> 17 three times: the prior's best, whatever the untrained beam


def test_mixture_weight_zero_is_the_generator_and_one_the_prior():
    c = Candidates(np.array([10, 11, 12, 13]), np.log([0.5, 0.3, 0.15, 0.05]), np.array([0.0, 0.1, 0.0, 0.8]))
    assert mix([c], 0.0) == [[10, 11, 12, 13]]
    assert mix([c], 1.0) == [[13, 11, 10, 12]]             # prior first, generator breaks the 0-prior tie
    assert mix([c], 0.5) == [[13, 10, 11, 12]]             # 0.425, 0.25, 0.2, 0.075
    with pytest.raises(ValueError, match="weight"):
        mix([c], 1.5)


def test_the_weight_is_chosen_on_the_given_split_where_the_two_models_complement():
    """Half the users: the generator ranks the target 11th, the prior 1st; the other half the generator ranks it
    1st and the prior never saw it (spread over the other 19). Each model alone: R@10 0.5; a small weight: 1.0."""
    rng = np.random.default_rng(0)
    cands, targets = [], []
    for u in range(40):
        items = np.arange(100, 120)
        gen = np.sort(rng.uniform(0.01, 0.05, 20))[::-1].copy()
        prior = np.zeros(20)
        if u % 2:
            prior[:] = 1 / 19
            gen[10], prior[10] = 0.06, 0.0                      # the generator's best; the prior never saw it
        else:
            prior[10] = 1.0                                     # the prior's only item; the generator's 11th
        cands.append(Candidates(items, np.log(gen), prior))
        targets.append(110)
    w, curve = choose_weight(cands, targets, [0.0, 0.05, 0.5, 1.0])
    assert curve[0.0] == pytest.approx(0.5) and curve[1.0] == pytest.approx(0.5)
    assert (w, curve[w]) == (0.05, 1.0) and curve[0.5] == pytest.approx(0.5)
