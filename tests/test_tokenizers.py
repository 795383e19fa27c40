"""Quantisers and tokenizers: gradients, determinism, save/reload, cluster structure."""

import numpy as np
import pytest
import torch

from sidkit.quantise import CodebookLevel, ResidualQuantiser
from sidkit.quantise.kmeans import kmeans
from sidkit.quantise.levels import rotation_trick, sinkhorn_codes
from sidkit.tokenizers import build_tokenizer, load_tokenizer

SMALL = {"levels": 2, "codebook_size": 16, "latent_dim": 8, "hidden_dims": [32], "epochs": 15,
         "batch_size": 128, "eval_every": 5}


def test_kmeans_is_seeded_and_finds_clusters(clustered_vectors):
    x, labels = clustered_vectors
    c1 = kmeans(torch.tensor(x), 8, seed=1)
    c2 = kmeans(torch.tensor(x), 8, seed=1)
    assert torch.equal(c1, c2)
    assign = torch.cdist(torch.tensor(x), c1).argmin(1).numpy()
    purity = sum(np.bincount(labels[assign == k]).max() for k in np.unique(assign)) / len(x)
    assert purity > 0.95


def test_kmeans_with_fewer_points_than_codes_gives_distinct_centroids():
    c = kmeans(torch.randn(3, 4), 10, seed=0)
    assert c.shape == (10, 4) and len(torch.unique(c, dim=0)) == 10


def test_rotation_trick_forward_equals_code_and_passes_gradient():
    e = torch.randn(5, 6, requires_grad=True)
    q = torch.randn(5, 6)
    out = rotation_trick(e, q)
    torch.testing.assert_close(out, q, atol=1e-5, rtol=1e-5)
    out.sum().backward()
    assert e.grad is not None and e.grad.abs().sum() > 0


@pytest.mark.parametrize("gradient", ["ste", "rotation"])
def test_residual_quantiser_reaches_encoder_and_codebook(gradient):
    rq = ResidualQuantiser([CodebookLevel(8, 4, gradient=gradient) for _ in range(2)])
    z = torch.randn(32, 4, requires_grad=True)
    out = rq(z)
    (out.quantised.pow(2).sum() + out.loss).backward()
    assert z.grad.abs().sum() > 0
    assert all(lvl.codebook.grad.abs().sum() > 0 for lvl in rq.levels)
    assert out.codes.shape == (32, 2) and out.distances.shape == (32, 2, 8)


def test_sinkhorn_balances_a_skewed_assignment():
    d = torch.rand(256, 8)
    d[:, 0] = -1.0  # every point is nearest to code 0
    plain = torch.bincount(d.argmin(1), minlength=8)
    balanced = torch.bincount(sinkhorn_codes(d, eps=0.05), minlength=8)
    assert plain.max() == 256 and balanced.max() < 100


@pytest.mark.parametrize("method", ["rqvae", "rqkmeans"])
def test_same_seed_same_sids_and_reload_identical(method, clustered_vectors, tmp_path):
    x, _ = clustered_vectors
    cfg = {"method": method, **SMALL}
    a = build_tokenizer(cfg, x.shape[1])
    a.fit(x)
    b = build_tokenizer(cfg, x.shape[1])
    b.fit(x)
    np.testing.assert_array_equal(a.encode(x).codes, b.encode(x).codes)
    a.save(tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == ["config.json", "model.safetensors"]
    c = load_tokenizer(tmp_path / "tok")
    np.testing.assert_array_equal(a.encode(x).codes, c.encode(x).codes)
    assert c.reconstruction_loss(x) == pytest.approx(a.reconstruction_loss(x))


def test_different_seed_changes_sids(clustered_vectors):
    x, _ = clustered_vectors
    a = build_tokenizer({"method": "rqvae", **SMALL, "seed": 0}, x.shape[1])
    a.fit(x)
    b = build_tokenizer({"method": "rqvae", **SMALL, "seed": 1}, x.shape[1])
    b.fit(x)
    assert not np.array_equal(a.encode(x).codes, b.encode(x).codes)


@pytest.mark.parametrize("method", ["rqvae", "rqkmeans"])
def test_first_level_captures_clusters(method, clustered_vectors):
    x, labels = clustered_vectors
    tok = build_tokenizer({"method": method, **SMALL, "codebook_size": 8, "epochs": 30}, x.shape[1])
    tok.fit(x)
    first = tok.encode(x).codes[:, 0]
    # items of one latent cluster share a first-level code
    purity = sum(np.bincount(first[labels == c]).max() for c in np.unique(labels)) / len(x)
    assert purity > 0.9


def test_rqvae_training_history_has_codebook_health(clustered_vectors):
    x, _ = clustered_vectors
    tok = build_tokenizer({"method": "rqvae", **SMALL}, x.shape[1])
    hist = tok.fit(x)
    assert len(hist) == SMALL["epochs"]
    assert {"loss", "recon_loss", "rq_loss", "collision_rate", "utilization", "perplexity"} <= set(hist[0])
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert any(h.get("selected") for h in hist)


def _rising_collisions(monkeypatch):
    """Make every evaluation report a higher collision rate than the one before (as when codes spread)."""
    import sidkit.tokenizers.trainer as trainer

    rates = iter(np.linspace(0.01, 0.5, 100))
    monkeypatch.setattr(trainer, "collision_rate", lambda codes: float(next(rates)))


def test_select_by_collision_keeps_the_lowest_and_warns_when_it_is_the_first(clustered_vectors, monkeypatch, caplog):
    x, _ = clustered_vectors
    _rising_collisions(monkeypatch)
    tok = build_tokenizer({"method": "rqvae", **SMALL, "select_by": "collision", "dead_code_reset": False}, x.shape[1])
    with caplog.at_level("WARNING", logger="sidkit"):
        hist = tok.fit(x)
    assert [h["epoch"] for h in hist if h.get("selected")] == [4]
    assert "select_by: last" in caplog.text
    # the kept weights are epoch 4's, not the final ones
    fresh = build_tokenizer({"method": "rqvae", **SMALL, "epochs": 5, "dead_code_reset": False}, x.shape[1])
    fresh.fit(x)
    np.testing.assert_array_equal(tok.encode(x).codes, fresh.encode(x).codes)


def test_select_by_last_keeps_the_trained_model(clustered_vectors, monkeypatch, caplog):
    x, _ = clustered_vectors
    _rising_collisions(monkeypatch)
    tok = build_tokenizer({"method": "rqvae", **SMALL, "select_by": "last"}, x.shape[1])
    with caplog.at_level("WARNING", logger="sidkit"):
        hist = tok.fit(x)
    assert [h["epoch"] for h in hist if "eval_collision_rate" in h] == [4, 9, 14]
    assert hist[-1].get("selected") and "select_by: last" not in caplog.text


def test_select_by_rejects_unknown_values():
    from sidkit.errors import ConfigError

    with pytest.raises((ConfigError, ValueError), match="select_by"):
        build_tokenizer({"method": "rqvae", "select_by": "best"}, 4)


def test_unknown_method_is_a_config_error():
    from sidkit.errors import ConfigError

    with pytest.raises(ConfigError, match="tokenizer.method"):
        build_tokenizer({"method": "magic"}, 4)


def test_balanced_kmeans_spreads_points_over_codes():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(900, 4, generator=g) * 0.1, torch.randn(100, 4, generator=g) * 3])  # one dense blob
    def sizes(c):
        return torch.bincount(torch.cdist(x, c).argmin(1), minlength=16)
    plain = kmeans(x, 16, seed=0)
    balanced = kmeans(x, 16, seed=0, balanced=True)
    assert sizes(balanced).max() < sizes(plain).max()
    assert torch.equal(balanced, kmeans(x, 16, seed=0, balanced=True))


def test_balanced_rqkmeans_avoids_residual_collapse():
    from sidkit.evaluation.sid_quality import sid_quality

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)).astype(np.float32)  # 300 items, 64 codes: few items per first-level code
    q = {}
    for bal in (False, True):
        tok = build_tokenizer({"method": "rqkmeans", "levels": 2, "codebook_size": 64, "kmeans_balanced": bal}, 16)
        tok.fit(x)
        q[bal] = sid_quality(tok.encode(x).codes, None, tok.codebook_sizes)
    assert q[True].normalized_entropy[1] > q[False].normalized_entropy[1]
    assert q[True].collision_rate <= q[False].collision_rate
