"""Precomputed item embeddings as a view: read, aligned to the catalogue, validated, fingerprinted."""

import numpy as np
import polars as pl
import pytest

from sidkit.data.schema import Catalogue, interactions_frame, items_frame
from sidkit.errors import ConfigError, DataFormatError
from sidkit.features.embeddings import FeatureConfig, embed_catalogue
from sidkit.features.precomputed import load_precomputed, precomputed_fingerprint

IDS = ["a", "b", "c", "d"]


def _npy(tmp_path, ids=("c", "a", "zz", "b"), vectors=None):
    vectors = np.arange(len(ids) * 3, dtype=np.float32).reshape(len(ids), 3) if vectors is None else vectors
    np.save(tmp_path / "v.npy", vectors)
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    return {"path": str(tmp_path / "v.npy"), "ids": str(tmp_path / "ids.txt")}, vectors


def test_npy_and_parquet_views_align_to_the_catalogue_and_count_what_they_miss(tmp_path):
    spec, vectors = _npy(tmp_path)
    out, present, info = load_precomputed(spec, IDS)
    assert present.tolist() == [True, True, True, False]          # d has no vector: masked, not imputed
    np.testing.assert_array_equal(out[0], vectors[1])              # a
    np.testing.assert_array_equal(out[2], vectors[0])              # c
    assert not out[3].any()
    assert info["n_missing"] == 1 and info["n_ignored"] == 1 and info["dim"] == 3
    pl.DataFrame({"item_id": ["c", "a", "zz", "b"], "embedding": vectors.tolist()}).write_parquet(tmp_path / "v.parquet")
    out2, present2, _ = load_precomputed({"path": str(tmp_path / "v.parquet")}, IDS)
    np.testing.assert_array_equal(out, out2)
    assert present2.tolist() == present.tolist()


def test_bad_files_name_the_file_and_row(tmp_path):
    spec, _ = _npy(tmp_path, ids=("a", "b", "a"))
    with pytest.raises(DataFormatError, match="appears again") as err:
        load_precomputed(spec, IDS)
    assert err.value.row == 3 and err.value.file.endswith("v.npy")
    bad = np.ones((2, 3), np.float32)
    bad[1, 2] = np.nan
    spec, _ = _npy(tmp_path, ids=("a", "b"), vectors=bad)
    with pytest.raises(DataFormatError, match="non-finite") as err:
        load_precomputed(spec, IDS)
    assert err.value.row == 2
    (tmp_path / "ids.txt").write_text("a\n")
    with pytest.raises(DataFormatError, match="1 ids for 2 vectors"):
        load_precomputed(spec, IDS)
    pl.DataFrame({"item_id": ["a", "b"], "embedding": [[1.0, 2.0], [1.0]]}).write_parquet(tmp_path / "r.parquet")
    with pytest.raises(DataFormatError, match="length 1") as err:
        load_precomputed({"path": str(tmp_path / "r.parquet")}, IDS)
    assert err.value.row == 2
    with pytest.raises(ConfigError, match="needs 'ids'"):
        load_precomputed({"path": spec["path"]}, IDS)


def test_a_precomputed_view_feeds_a_tokenizer_and_its_file_is_part_of_the_cache_key(tmp_path):
    from sidkit.tokenizers import build_tokenizer

    rng = np.random.default_rng(0)
    ids = [f"i{k}" for k in range(200)]
    vectors = rng.normal(size=(200, 8)).astype(np.float32)
    np.save(tmp_path / "clip.npy", vectors)
    (tmp_path / "clip.txt").write_text("\n".join(ids))
    cat = Catalogue("x", items_frame([{"item_id": i, "title": None} for i in ids]),
                    interactions_frame([{"user_id": "u", "item_id": "i0", "_row": 1}]))
    features = {"text": {"enabled": False}, "image": {"enabled": False}, "behaviour": {"enabled": False},
                "precomputed": {"clip": {"path": str(tmp_path / "clip.npy"), "ids": str(tmp_path / "clip.txt")}}}
    emb = embed_catalogue(cat, None, features)
    assert list(emb.views) == ["clip"] and emb.masks["clip"].all()
    tok = build_tokenizer({"method": "rqkmeans", "input_views": ["clip"], "levels": 2, "codebook_size": 8}, 8)
    tok.fit(emb.matrix(["clip"]))
    assert tok.encode(emb.matrix(["clip"])).codes.shape == (200, 2)
    before = precomputed_fingerprint(features)
    np.save(tmp_path / "clip.npy", vectors + 1)
    assert precomputed_fingerprint(features) != before
    with pytest.raises(ValueError, match="computed and precomputed"):   # a config error, before anything runs
        FeatureConfig.model_validate({**features, "precomputed": {"text": features["precomputed"]["clip"]},
                                      "text": {"enabled": True}})
