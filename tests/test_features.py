"""Features: real offline encoders, masks for missing views, the embedding cache."""

import numpy as np
import pytest

from sidkit.data.splits import leave_one_out
from sidkit.features import embed_catalogue
from sidkit.features.behaviour import SASRecConfig, behaviour_embeddings
from sidkit.features.cache import EmbeddingCache
from sidkit.features.encoders import ImageEncoder, TextEncoder, encode_cached


def test_text_encoder_is_real_minilm_and_semantic():
    enc = TextEncoder()
    v = enc.encode(["red matte lipstick", "rose lip gloss", "diesel engine oil filter"])
    assert v.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2]


def test_image_encoder_gives_1280d_features(tmp_path):
    from PIL import Image

    paths = []
    for i, colour in enumerate([(255, 0, 0), (250, 10, 5), (0, 0, 255)]):
        p = tmp_path / f"{i}.png"
        Image.new("RGB", (50, 80), colour).save(p)
        paths.append(str(p))
    enc = ImageEncoder()
    x = enc.preprocess(paths[0])
    assert x.shape == (3, 224, 224) and x.max() <= 1.0 and x.min() >= -1.0  # (pixel - 127) / 128
    v = enc.encode(paths)
    assert v.shape == (3, 1280) and np.isfinite(v).all()
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    assert cos(v[0], v[1]) > cos(v[0], v[2])


class CountingEncoder:
    key, dim = "fake-1", 3

    def __init__(self):
        self.calls = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return np.array([[len(t), 1.0, 0.0] for t in texts], np.float32)

    def cache_keys(self, texts):
        return list(texts)


def test_cache_reencodes_only_new_inputs(tmp_path):
    enc = CountingEncoder()
    a = encode_cached(enc, ["x", "yy"], str(tmp_path))
    b = encode_cached(enc, ["yy", "x", "zzz"], str(tmp_path))
    assert enc.calls == [["x", "yy"], ["zzz"]]
    np.testing.assert_array_equal(b[:2], a[::-1])
    fresh = EmbeddingCache(str(tmp_path), enc.key)  # persisted across instances
    found, missing = fresh.lookup(["x", "zzz", "new"])
    assert sorted(found) == [0, 1] and missing == [2]


def test_behaviour_embeddings_use_training_split_and_mask_unseen(small_synthetic):
    cat, _ = small_synthetic
    splits = leave_one_out(cat.interactions)
    ids = cat.items["item_id"].to_list() + ["never-seen"]
    vecs, seen, info = behaviour_embeddings(ids, splits.train_sequences(), SASRecConfig(dim=16, epochs=2, max_len=10))
    assert vecs.shape == (len(ids), 16) and not seen[-1]
    train_items = set(splits.part("train")["item_id"].to_list())
    assert seen.sum() == len(train_items)
    assert len(info["losses"]) == 2
    again, _, _ = behaviour_embeddings(ids, splits.train_sequences(), SASRecConfig(dim=16, epochs=2, max_len=10))
    np.testing.assert_array_equal(vecs, again)  # seeded


def test_sasrec_losses_match_their_definitions():
    import torch
    import torch.nn.functional as F

    from sidkit.features.behaviour import SASRec, sasrec_loss

    torch.manual_seed(0)
    net = SASRec(30, SASRecConfig(dim=8, max_len=6))
    x = torch.tensor([[0, 0, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5]])
    y = torch.tensor([[0, 0, 4, 5, 6, 7], [0, 2, 3, 4, 5, 30]])
    h = net(x)
    # ce: softmax over all 30 items at the 9 real positions, padding ignored
    logits = h @ net.item.weight[1:].T
    want = F.cross_entropy(logits.reshape(-1, 30), (y - 1).reshape(-1), ignore_index=-1)
    torch.testing.assert_close(sasrec_loss(net, h, y, "ce", torch.Generator().manual_seed(1)), want)
    # bce: one negative per position from the given generator, the arithmetic of the rows measured before ce
    neg = torch.randint(1, 31, y.shape, generator=torch.Generator().manual_seed(1))
    pos_l, neg_l = (h * net.item(y)).sum(-1), (h * net.item(neg)).sum(-1)
    valid = (y > 0).float()
    bce = torch.nn.BCEWithLogitsLoss(reduction="none")
    old = ((bce(pos_l, torch.ones_like(pos_l)) + bce(neg_l, torch.zeros_like(neg_l))) * valid).sum() / valid.sum()
    assert torch.equal(sasrec_loss(net, h, y, "bce", torch.Generator().manual_seed(1)), old)
    with pytest.raises(ValueError, match="loss"):
        SASRecConfig(loss="mse")


def test_behaviour_view_trains_with_cross_entropy(small_synthetic):
    cat, _ = small_synthetic
    splits = leave_one_out(cat.interactions)
    ids = cat.items["item_id"].to_list()
    cfg = SASRecConfig(dim=16, epochs=4, max_len=10, loss="ce")
    vecs, seen, info = behaviour_embeddings(ids, splits.train_sequences(), cfg)
    assert info["losses"][-1] < info["losses"][0] < np.log(len(ids)) + 1  # starts near log(catalogue), learns
    again, _, _ = behaviour_embeddings(ids, splits.train_sequences(), cfg)
    np.testing.assert_array_equal(vecs, again)
    bce, _, _ = behaviour_embeddings(ids, splits.train_sequences(), SASRecConfig(dim=16, epochs=4, max_len=10))
    assert not np.array_equal(vecs, bce)
    emb = embed_catalogue(cat, splits, {"text": {"enabled": False}, "behaviour": {"epochs": 1, "dim": 8, "loss": "ce"}})
    assert emb.encoders["behaviour"]["loss"] == "ce"
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="loss"):
        embed_catalogue(cat, splits, {"behaviour": {"loss": "mse"}})


def test_embed_catalogue_views_and_masks(small_synthetic):
    cat, _ = small_synthetic  # no images in this catalogue
    splits = leave_one_out(cat.interactions)
    emb = embed_catalogue(cat, splits, {"behaviour": {"epochs": 1, "dim": 8}})
    assert set(emb.views) == {"text", "behaviour"}  # no image view is invented
    assert emb.dims() == {"text": 384, "behaviour": 8}
    from sidkit.errors import ConfigError

    with pytest.raises(ConfigError, match="image"):
        emb.matrix(["text", "image"])
    m = emb.matrix(["text", "behaviour"])
    assert m.shape == (cat.n_items, 392)
    np.testing.assert_allclose(np.linalg.norm(m[:, :384], axis=1), 1, atol=1e-4)
