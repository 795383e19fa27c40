"""Materializers: plain formats, round trips, metadata and HTML views."""

import json
import os

import numpy as np
import pytest

from sidkit.data.splits import leave_one_out
from sidkit.data.validation import validate_catalogue
from sidkit.evaluation.sid_quality import sid_quality
from sidkit.features.embeddings import ItemEmbeddings
from sidkit.sids.collisions import resolve_collisions
from sidkit.sids.table import build_sid_table
from sidkit.tokenizers import build_tokenizer


def _roundtrip(materializer_cls, data, path, data_type=None):
    m = materializer_cls(uri=str(path))
    m.save(data)
    viz = m.save_visualizations(data)
    meta = m.extract_metadata(data)
    loaded = materializer_cls(uri=str(path)).load(data_type or type(data))
    return loaded, meta, viz


def _files(path):
    return sorted(os.listdir(path))


def test_catalogue_and_splits(small_synthetic, tmp_path):
    from materializers import CatalogueMaterializer, SplitsMaterializer

    cat, _ = small_synthetic
    loaded, meta, viz = _roundtrip(CatalogueMaterializer, cat, tmp_path / "cat")
    assert loaded.items.equals(cat.items) and loaded.interactions.equals(cat.interactions)
    assert meta["n_items"] == cat.n_items and meta["content_hash"] == cat.content_hash()
    assert "interactions.parquet" in _files(tmp_path / "cat")
    assert next(iter(viz)).endswith(".html")
    splits = leave_one_out(cat.interactions, max_history=7)
    s2, meta, _ = _roundtrip(SplitsMaterializer, splits, tmp_path / "splits")
    assert s2.max_history == 7 and s2.interactions.equals(splits.interactions) and meta["n_test"] == cat.n_users


def test_embeddings(tmp_path):
    from materializers import ItemEmbeddingsMaterializer

    emb = ItemEmbeddings(["a", "b"], {"text": np.random.rand(2, 3).astype(np.float32)},
                         {"text": np.array([True, False])}, {"text": {"model": "m", "version": "1", "dim": 3}})
    loaded, meta, _ = _roundtrip(ItemEmbeddingsMaterializer, emb, tmp_path / "emb")
    np.testing.assert_array_equal(loaded.views["text"], emb.views["text"])
    np.testing.assert_array_equal(loaded.masks["text"], emb.masks["text"])
    assert loaded.item_ids == ["a", "b"] and meta["views.text.model"] == "m"
    assert not any(f.endswith(".pkl") for f in _files(tmp_path / "emb"))


def test_tokenizer_is_config_plus_safetensors_and_reloads_identically(clustered_vectors, tmp_path):
    from materializers import TokenizerMaterializer
    from sidkit.tokenizers.base import Tokenizer

    x, _ = clustered_vectors
    tok = build_tokenizer({"method": "rqvae", "levels": 2, "codebook_size": 8, "latent_dim": 4,
                           "hidden_dims": [16], "epochs": 3, "batch_size": 256}, x.shape[1])
    tok.fit(x)
    loaded, meta, viz = _roundtrip(TokenizerMaterializer, tok, tmp_path / "tok", Tokenizer)
    assert _files(tmp_path / "tok") == ["config.json", "model.safetensors", "visualization.html"]
    np.testing.assert_array_equal(loaded.encode(x).codes, tok.encode(x).codes)
    assert meta["method"] == "rqvae" and meta["levels"] == 2 and meta["n_parameters"] > 0
    cfg = json.loads((tmp_path / "tok" / "config.json").read_text())
    assert cfg["config"]["codebook_size"] == 8


def test_sid_table_and_quality(tmp_path):
    from materializers import SIDQualityMaterializer, SIDTableMaterializer

    codes = np.array([[0, 1], [0, 1], [2, 3]])
    final = resolve_collisions(codes, None, "append_token")
    table = build_sid_table(["a", "b", "c"], codes, final, "rqvae", [4, 4], "append_token")
    assert table.frame["sid"].to_list()[0] == "<a_0><b_1><c_0>"
    assert table.lookup()[(0, 1, 1)] == "b"
    loaded, meta, viz = _roundtrip(SIDTableMaterializer, table, tmp_path / "sids")
    assert loaded.frame.equals(table.frame) and meta["items_with_raw_collision"] == 2
    html = open(next(iter(viz))).read()
    assert "<svg" in html and "level 1" in html  # per-level code-usage histogram
    q = sid_quality(codes, final, [4, 4], 0.1)
    q2, meta, _ = _roundtrip(SIDQualityMaterializer, q, tmp_path / "q")
    assert q2 == q and meta["collision_rate"] == pytest.approx(1 / 3)


def test_validation_report(small_synthetic, tmp_path):
    from materializers import ValidationReportMaterializer

    cat, _ = small_synthetic
    report, _, _ = validate_catalogue(cat)
    loaded, meta, viz = _roundtrip(ValidationReportMaterializer, report, tmp_path / "rep")
    assert loaded.to_dict() == report.to_dict() and meta["passed"] is True
    assert _files(tmp_path / "rep") == ["report.html", "report.json", "visualization.html"]
