"""MMQ, ADA-SID and MACRec: each mechanism does what it claims, on small synthetic views."""

import numpy as np
import pytest
import torch

from sidkit.errors import ConfigError
from sidkit.features.embeddings import ItemEmbeddings
from sidkit.tokenizers import load_tokenizer
from sidkit.tokenizers.base import FitContext
from sidkit.tokenizers.fit import assign_sids, fit_tokenizer

BASE = {"levels": 2, "codebook_size": 16, "latent_dim": 8, "hidden_dims": [32], "epochs": 25,
        "batch_size": 100, "eval_every": 5}
VIEWS = {"mmq": ["text", "image"], "adasid": ["text", "behaviour"], "macrec": ["text", "image"]}


@pytest.fixture(scope="module")
def views():
    """Latent clusters drive text, image and behaviour; popularity is power-law; 10% lack an image."""
    rng = np.random.default_rng(0)
    n, k = 400, 8
    labels = rng.integers(0, k, n)
    def view(dim, noise):
        centres = rng.normal(0, 1, (k, dim))
        return (centres[labels] + rng.normal(0, noise, (n, dim))).astype(np.float32)
    text, image, behaviour = view(32, 0.4), view(24, 0.4), view(16, 0.8)
    has_image = rng.random(n) > 0.1
    image[~has_image] = 0
    counts = (rng.pareto(1.2, n) * 3).astype(np.int64)
    emb = ItemEmbeddings([f"i{i}" for i in range(n)], {"text": text, "image": image, "behaviour": behaviour},
                         {"text": np.ones(n, bool), "image": has_image, "behaviour": counts > 0},
                         {}, {"train_count": counts})
    emb.views["behaviour"][counts == 0] = 0
    return emb, labels


def _fit(emb, method, **over):
    return fit_tokenizer(emb, {**BASE, "method": method, "input_views": VIEWS[method], **over})


@pytest.mark.parametrize("method", ["mmq", "adasid", "macrec"])
def test_unique_sids_same_seed_same_sids_and_reload(method, views, tmp_path):
    emb, _ = views
    tok, history = _fit(emb, method)
    table, q = assign_sids(tok, emb, "relocate")
    assert q.collision_rate_final == 0 and table.frame.height == emb.n_items
    assert len(table.sid_columns) == len(tok.codebook_sizes)
    again, _ = _fit(emb, method)
    table2, _ = assign_sids(again, emb, "relocate")
    np.testing.assert_array_equal(table.sids(), table2.sids())
    tok.save(tmp_path / "t")
    reloaded = load_tokenizer(tmp_path / "t")
    x = emb.matrix(VIEWS[method])
    np.testing.assert_array_equal(reloaded.encode(x).codes, tok.encode(x).codes)
    assert set(q.recon_loss_per_view) == set(VIEWS[method])
    assert history[-1]["loss"] < history[0]["loss"]
    # each expert's block of codes has its own collision rate, at least the joint one (a block is a coarser key)
    experts = tok.describe()["experts"]
    assert list(q.collision_rate_per_expert) == experts and len(experts) >= 2
    assert all(q.collision_rate <= r <= 1 for r in q.collision_rate_per_expert.values())


def test_macrec_collisions_per_modality_make_each_branch_unique(views):
    from sidkit.evaluation.sid_quality import collision_rate
    from sidkit.sids.stable import extend_sid_table
    from sidkit.sids.table import build_sid_table

    emb, _ = views
    tok, _ = _fit(emb, "macrec", epochs=5, codebook_size=32)        # 400 items, 8 clusters: branches collide
    joint, q = assign_sids(tok, emb, "relocate")
    assert min(q.collision_rate_per_expert.values()) > 0.05
    table, q2 = assign_sids(tok, emb, "relocate", per_expert=True)
    assert q2.collision_rate_final == 0 and table.info["collisions_per_expert"] is True
    assert collision_rate(table.sids()[:, :2]) == 0 and collision_rate(table.sids()[:, 2:]) == 0
    assert q2.collision_rate_per_expert == q.collision_rate_per_expert       # the raw rates, before resolution
    # downstream, the SID is read as one view per branch, each named by its modality
    from sidkit.evaluation.downstream import sid_views, view_names
    assert sid_views(table) == [[0, 1], [2, 3]] and view_names(table, 2) == ["text", "image"]
    # append mode keeps the layout: the new items are unique per branch against the published ones too
    ids = table.frame["item_id"].to_list()
    published = build_sid_table(ids[:300], table.codes()[:300], table.sids()[:300], table.method,
                                table.codebook_sizes, table.collision_policy, info=table.info)
    extended, stats = extend_sid_table(published, tok, emb)
    assert stats["new_items"] == 100 and stats["kept_share"] == 1.0
    assert collision_rate(extended.sids()[:, :2]) == 0 and collision_rate(extended.sids()[:, 2:]) == 0
    with pytest.raises(ValueError, match="relocate"):
        assign_sids(tok, emb, "append_token", per_expert=True)
    rq, _ = fit_tokenizer(emb, {**BASE, "method": "rqkmeans", "input_views": ["text"]})
    with pytest.raises(ValueError, match="several experts"):
        assign_sids(rq, emb, "relocate", per_expert=True)


def test_views_the_data_lacks_are_refused(views):
    emb, _ = views
    partial = ItemEmbeddings(emb.item_ids, {"text": emb.views["text"]}, {"text": emb.masks["text"]})
    with pytest.raises(ConfigError, match="image"):
        fit_tokenizer(partial, {**BASE, "method": "macrec", "input_views": ["text", "image"]})
    with pytest.raises(ConfigError, match="behaviour"):
        fit_tokenizer(emb, {**BASE, "method": "adasid", "input_views": ["text", "image"]})
    with pytest.raises(ConfigError, match="two views"):
        fit_tokenizer(emb, {**BASE, "method": "mmq", "input_views": ["text"]})
    with pytest.raises(ConfigError, match="unknown loss weight"):
        fit_tokenizer(emb, {**BASE, "method": "mmq", "input_views": ["text", "image"], "loss_weights": {"typo": 1}})


def _shared_specific_cos2(tok, emb):
    x = torch.as_tensor(emb.matrix(VIEWS["mmq"]))
    with torch.no_grad():
        xv = tok.split(x)
        z = tok.latents(xv, tok.present(xv))
    return float(tok.orthogonality(z))


def test_mmq_orthogonality_lowers_shared_specific_similarity(views):
    emb, _ = views
    off, _ = _fit(emb, "mmq", loss_weights={"orthogonal": 0.0})
    on, _ = _fit(emb, "mmq", loss_weights={"orthogonal": 1.0})
    assert _shared_specific_cos2(on, emb) < 0.5 * _shared_specific_cos2(off, emb)


def test_adasid_richness_weights_rise_with_interaction_count(views):
    emb, _ = views
    tok, _ = _fit(emb, "adasid", epochs=1)
    counts = np.array([0, 1, 3, 10, 100, 1000])
    ctx = FitContext(item_counts=counts)
    w = tok.richness(torch.arange(len(counts)), ctx).numpy()
    assert np.all(np.diff(w) > 0) and w[0] < 0.5 < w[-1]
    flat, _ = _fit(emb, "adasid", epochs=1, richness_aware=False)
    assert np.allclose(flat.richness(torch.arange(len(counts)), ctx).numpy(), 1.0)


def test_adasid_router_is_sparse_exported_and_follows_behaviour(views):
    emb, _ = views
    tok, _ = _fit(emb, "adasid", router_top_k=1)
    table, _ = assign_sids(tok, emb, "relocate")
    weights = table.frame.select([c for c in table.frame.columns if c.startswith("weight_")]).to_numpy()
    assert weights.shape == (emb.n_items, 2)  # one weight per behavioural SID position
    assert ((weights > 0).sum(1) <= 1).all()  # top-1: at most one active gate per item
    x = emb.matrix(VIEWS["adasid"])
    shifted = x.copy()
    shifted[:, -16:] = np.roll(shifted[:, -16:], 1, axis=0)  # other items' behaviour
    assert not np.allclose(tok.item_weights(x)["weight_4"], tok.item_weights(shifted)["weight_4"])
    l1, _ = _fit(emb, "adasid", loss_weights={"sparse": 0.05})
    free, _ = _fit(emb, "adasid", loss_weights={"sparse": 0.0})
    assert sum(v.sum() for v in l1.item_weights(x).values()) < sum(v.sum() for v in free.item_weights(x).values())


def test_macrec_cross_modal_contrast_raises_text_image_code_agreement(views):
    from sklearn.metrics import normalized_mutual_info_score as nmi

    emb, _ = views
    x = emb.matrix(VIEWS["macrec"])
    has_image = emb.masks["image"]

    def agreement(tok):
        codes = tok.encode(x).codes  # text levels 0..1, image levels 2..3
        return np.mean([nmi(codes[has_image, l], codes[has_image, 2 + l]) for l in range(2)])

    cfg = {"levels": 2, "contrast_start_level": 0, "epochs": 30}
    off, _ = _fit(emb, "macrec", loss_weights={"contrast": 0.0, "align": 0.0}, **cfg)
    on, _ = _fit(emb, "macrec", loss_weights={"contrast": 1.0, "align": 0.0}, **cfg)
    assert agreement(on) > agreement(off)


def test_macrec_positives_come_from_the_other_views_clusters(views):
    emb, _ = views
    tok, _ = _fit(emb, "macrec", epochs=1)
    labels = torch.tensor([0, 0, 1, 1, 2, -1])
    pos = tok._positives(labels, torch.Generator().manual_seed(0))
    assert pos.tolist()[:4] == [1, 0, 3, 2]
    assert pos[4] == 4 and pos[5] == 5  # no partner in the batch (or no label): itself


def test_next_sid_objective_reads_hard_sids_forward_and_trains_the_codebooks_backward(views):
    """MMQ stage 2 against the SID generator's loss: the generator sees each history item as exactly its hard
    SID's embedding (straight-through), and the next-SID loss's gradient reaches every level's codebook."""
    from sidkit.tokenizers.finetune import NextSIDHead, soft_quantise

    emb, _ = views
    tok, _ = _fit(emb, "mmq")
    x = torch.as_tensor(emb.matrix(VIEWS["mmq"]))
    xv = tok.split(x)
    z = tok.latents(xv, tok.present(xv))
    assignments: list = []
    for spec in tok.specs:
        soft_quantise(tok.experts[spec.name].rq, z[spec.name], 0.1, "mean_distance", None, assignments)
    sizes = [p.shape[1] for p, _ in assignments]
    head = NextSIDHead(sizes, 32, 5)
    table = head.generator.item_table()
    codes = torch.stack([c for _, c in assignments], 1)
    hard = sum(table[o + codes[:, j]] for j, o in enumerate(head.vocab.offsets))
    captured = {}
    encode = head.generator.encode_vectors

    def spy(v, real, view=0):
        captured["v"] = v
        return encode(v, real, view)

    head.generator.encode_vectors = spy
    windows = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    loss = head(assignments, windows)
    torch.testing.assert_close(captured["v"][1, 1:], hard[4:7].detach(), atol=1e-5, rtol=1e-5)
    assert torch.equal(captured["v"][0, 0], torch.zeros(32))                       # padding
    loss.backward()
    for spec in tok.specs:
        assert all(level.codebook.grad is not None and level.codebook.grad.abs().sum() > 0
                   for level in tok.experts[spec.name].rq.levels)


@pytest.mark.parametrize("objective", ["next_item", "next_sid"])
def test_soft_indexing_gradient_reaches_codebooks_and_changes_sids(views, tmp_path, objective):
    from sidkit.tokenizers.finetune import finetune_soft_indexing, soft_quantise

    emb, _ = views
    tok, _ = _fit(emb, "mmq")
    rq = tok.experts["shared0"].rq
    z = torch.randn(10, 8, requires_grad=True)
    q = soft_quantise(rq, z, temperature=0.1)
    hard = rq(z.detach()).quantised
    torch.testing.assert_close(q, hard, atol=1e-5, rtol=1e-5)  # forward = hard codes
    q.pow(2).sum().backward()
    assert all(level.codebook.grad is not None and level.codebook.grad.abs().sum() > 0 for level in rq.levels)
    assert z.grad.abs().sum() > 0

    x = emb.matrix(VIEWS["mmq"])
    before = tok.encode(x).codes.copy()
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, emb.n_items, 6).tolist() for _ in range(100)]
    hist = finetune_soft_indexing(tok, x, seqs, {"epochs": 3, "batch_size": 64, "lr": 1e-3, "objective": objective})
    assert hist[-1]["task_loss"] < hist[0]["task_loss"]
    assert (tok.encode(x).codes != before).any()  # re-indexed hard SIDs moved
    tok.save(tmp_path / "s2")
    assert load_tokenizer(tmp_path / "s2").stage == "stage2-soft-indexing"


def test_soft_assignment_is_informative_on_the_default_scale_and_stage2_keeps_first_level_usage(views):
    """Raw-scale tau = 1 spreads a residual over almost every code (the entropy stage 2 had on Beauty);
    the default (tau 0.1 on distances over their mean) concentrates it on the nearest codes."""
    from sidkit.evaluation.sid_quality import sid_quality
    from sidkit.tokenizers.finetune import finetune_soft_indexing, soft_quantise

    emb, _ = views
    tok, _ = _fit(emb, "mmq")
    x = emb.matrix(VIEWS["mmq"])
    xv = tok.split(torch.as_tensor(x))
    z = tok.latents(xv, tok.present(xv))["shared0"].detach()
    raw, scaled = [], []
    soft_quantise(tok.experts["shared0"].rq, z, 1.0, "absolute", raw)
    soft_quantise(tok.experts["shared0"].rq, z, 0.1, "mean_distance", scaled)
    log_k = np.log(tok.config.codebook_size)
    assert raw[0] > 0.9 * log_k                      # near-uniform: no preference for the nearest codes
    assert scaled[0] < 0.75 * log_k                  # informative
    before = sid_quality(tok.encode(x).codes, None, [tok.config.codebook_size] * tok.encode(x).codes.shape[1])
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, emb.n_items, 6).tolist() for _ in range(100)]
    hist = finetune_soft_indexing(tok, x, seqs, {"epochs": 2, "batch_size": 64, "lr": 1e-3, "content_weight": 100.0})
    assert len(hist[0]["soft_entropy"]) == len(tok.specs) * tok.config.levels and hist[0]["soft_entropy_max"] == log_k
    after = sid_quality(tok.encode(x).codes, None, before.codebook_sizes)
    assert after.perplexity[0] >= 0.8 * before.perplexity[0]     # stage 2 keeps the first level's usage
