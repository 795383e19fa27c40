"""ADA-SID's router weights in generative retrieval (``sid_weights: router``): the exact item lookup, the
weighted history embedding, the error without weights, and the model bundle round trip."""

import numpy as np
import pytest
import torch

from sidkit.errors import ConfigError
from sidkit.evaluation.bundles import ModelBundle
from sidkit.retrieval.generator import BOS, GeneratorConfig, SIDVocabulary, build_generator, max_tokens
from sidkit.retrieval.item_weights import ItemWeights


def _catalogue():
    """Items sharing long prefixes (so a lookup on a prefix alone would confuse them) and one shared SID."""
    sids = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [2, 3, 1], [2, 3, 1]])
    rng = np.random.default_rng(0)
    weights = rng.random((len(sids), 3)).astype(np.float32)
    return sids, weights


def test_item_weights_finds_each_items_own_row_exactly():
    sids, weights = _catalogue()
    vocab = SIDVocabulary.from_sids(sids)
    lookup = ItemWeights(vocab.tokens(sids), weights, vocab.size)
    got = lookup(torch.as_tensor(vocab.tokens(sids)))
    assert torch.allclose(got[:5], torch.as_tensor(weights[:5]))
    assert torch.allclose(got[5], torch.as_tensor(weights[4]))          # a SID two items share: the first's weights
    # padding and a SID the catalogue does not hold (its prefixes do exist) get ones
    unknown = torch.as_tensor(vocab.tokens(np.array([[0, 1, 1], [1, 0, 0]])))
    unknown[1] = 0
    assert torch.equal(lookup(unknown), torch.ones(2, 3))
    # any leading shape
    assert lookup(torch.as_tensor(vocab.tokens(sids)).reshape(2, 3, 3)).shape == (2, 3, 3)


def _rows(vocab, sids, histories):
    tok = vocab.tokens(sids)
    return torch.tensor([[BOS] + tok[h].reshape(-1).tolist() for h in histories])


def test_a_zero_router_weight_removes_that_token_from_the_history_and_nothing_else():
    sids, weights = _catalogue()
    weights[:, 2] = 0.0                          # the router switches the last position off for every item
    weights[1, :2] = weights[0, :2]              # items 0 and 1: the same codes and weights on positions 0, 1
    vocab = SIDVocabulary.from_sids(sids)
    cfg = GeneratorConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0, max_history=4,
                          sid_weights="router")
    torch.manual_seed(0)
    model = build_generator(vocab, max_tokens(cfg, vocab.length), cfg, sids=sids, weights=weights).eval()
    # items 0 and 1 differ only in the last position: with its weight 0 their histories encode alike
    same = model.encode(_rows(vocab, sids, [[3, 0], [3, 1]]))
    assert torch.allclose(same[0], same[1], atol=1e-6)
    unweighted = build_generator(vocab, max_tokens(cfg, vocab.length), cfg.model_copy(update={"sid_weights": "none"}))
    unweighted.load_state_dict(model.state_dict())
    differ = unweighted.eval().encode(_rows(vocab, sids, [[3, 0], [3, 1]]))
    assert not torch.allclose(differ[0, -1], differ[1, -1], atol=1e-4)
    # the generated SIDs are untouched: the decoder still scores every position, the last one included
    logits, _ = model.start(_rows(vocab, sids, [[3, 0]]))
    assert torch.isfinite(logits).any()


def test_router_weights_need_weights_and_survive_the_model_bundle(tmp_path):
    sids, weights = _catalogue()
    vocab = SIDVocabulary.from_sids(sids)
    cfg = GeneratorConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, dropout=0.0, max_history=4,
                          sid_weights="router")
    with pytest.raises(ConfigError, match="weight_<p>"):
        build_generator(vocab, max_tokens(cfg, vocab.length), cfg, sids=sids)
    torch.manual_seed(0)
    model = build_generator(vocab, max_tokens(cfg, vocab.length), cfg, sids=sids, weights=weights).eval()
    bundle = ModelBundle.of("sid-generator", model, cfg.model_dump(mode="json"), arrays={"sids": sids, "weights": weights},
                            info={"max_len": max_tokens(cfg, vocab.length), "sid_sizes": vocab.sizes})
    bundle.save(tmp_path / "g")
    again = ModelBundle.load(tmp_path / "g").build()
    rows = _rows(vocab, sids, [[3, 0, 4], [1, 2, 5]])
    assert torch.equal(again.encode(rows), model.encode(rows))
