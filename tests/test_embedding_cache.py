"""The embedding cache: one entry per key, atomic single-file writes, refused when corrupt."""

import numpy as np
import pytest

from sidkit.features.cache import CACHE_FILE, CorruptCacheError, EmbeddingCache
from sidkit.features.encoders import encode_cached


class LengthEncoder:
    """Deterministic fake encoder: the vector says which text it came from."""

    key, dim = "fake-len-1", 3

    def __init__(self):
        self.calls = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return np.array([[len(t), sum(map(ord, t)) % 97, 1.0] for t in texts], np.float32)

    def cache_keys(self, texts):
        return list(texts)


def test_repeated_inputs_keep_their_own_vectors_after_reload(tmp_path):
    enc = LengthEncoder()
    texts = ["a", "bb", "a", "", "ccc", "", "dddd", "bb", "eeeee"]  # repeats and empty texts, as in Beauty
    cold = encode_cached(enc, texts, str(tmp_path))
    assert enc.calls == [["a", "bb", "", "ccc", "dddd", "eeeee"]]  # each distinct input encoded once
    warm = encode_cached(LengthEncoder(), texts, str(tmp_path))
    np.testing.assert_array_equal(warm, cold)
    np.testing.assert_array_equal(cold, enc.encode(texts))  # every position its own text's vector
    # a later call adds more after the duplicates: still every key its own vector after reload
    more = ["ffffff", "a", "ggggggg"]
    encode_cached(LengthEncoder(), more, str(tmp_path))
    cache = EmbeddingCache(str(tmp_path), enc.key, enc.dim)
    assert len(cache) == 8
    found, missing = cache.lookup(texts + more)
    assert missing == []
    np.testing.assert_array_equal(np.stack([found[i] for i in range(len(texts + more))]), enc.encode(texts + more))


def test_add_with_duplicates_stores_one_entry_per_key(tmp_path):
    cache = EmbeddingCache(str(tmp_path), "ns", 2)
    cache.add(["k1", "k2", "k1", "k3"], np.array([[1, 1], [2, 2], [9, 9], [3, 3]], np.float32))
    cache.add(["k4"], np.array([[4, 4]], np.float32))
    fresh = EmbeddingCache(str(tmp_path), "ns", 2)
    found, _ = fresh.lookup(["k1", "k2", "k3", "k4"])
    assert [found[i][0] for i in range(4)] == [1, 2, 3, 4]  # first vector per key; no shift after it


def test_two_writers_merge_instead_of_overwriting(tmp_path):
    a = EmbeddingCache(str(tmp_path), "ns", 2)
    b = EmbeddingCache(str(tmp_path), "ns", 2)  # both loaded the (empty) cache before either wrote
    a.add(["x"], np.array([[1, 0]], np.float32))
    b.add(["y"], np.array([[0, 1]], np.float32))
    found, missing = EmbeddingCache(str(tmp_path), "ns", 2).lookup(["x", "y"])
    assert missing == [] and found[0][0] == 1 and found[1][1] == 1


def test_one_file_and_no_leftover_temporaries(tmp_path):
    cache = EmbeddingCache(str(tmp_path), "ns", 2)
    cache.add(["x", "y"], np.ones((2, 2), np.float32))
    assert sorted(p.name for p in (tmp_path / "ns").iterdir()) == sorted([CACHE_FILE, "cache.lock"])


def _corrupt(path, how):
    z = dict(np.load(path, allow_pickle=False))
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
        return
    if how == "fewer_keys":
        z["keys"] = z["keys"][:-1]
    elif how == "changed_vector":
        z["vectors"] = z["vectors"].copy()
        z["vectors"][0, 0] += 1
    elif how == "wrong_dim":
        z["vectors"] = np.zeros((len(z["keys"]), 5), np.float32)
    elif how == "duplicate_key":
        z["keys"] = np.array([z["keys"][0]] * len(z["keys"]))
    elif how == "no_checksum":
        del z["checksum"]
    with open(path, "wb") as f:
        np.savez(f, **z)


@pytest.mark.parametrize("how", ["truncated", "fewer_keys", "changed_vector", "wrong_dim", "duplicate_key",
                                 "no_checksum"])
def test_corrupt_cache_is_refused_with_the_file_named(tmp_path, how):
    EmbeddingCache(str(tmp_path), "ns", 2).add(["x", "y", "z"], np.arange(6, dtype=np.float32).reshape(3, 2))
    path = tmp_path / "ns" / CACHE_FILE
    _corrupt(path, how)
    with pytest.raises(CorruptCacheError, match=str(path)) as err:
        EmbeddingCache(str(tmp_path), "ns", 2)
    assert "delete" in str(err.value)


def test_legacy_two_file_cache_is_ignored_and_replaced(tmp_path):
    folder = tmp_path / "ns"
    folder.mkdir()
    np.save(folder / "keys.npy", np.array(["x"]))  # fewer keys than vectors, as the old bug wrote
    np.save(folder / "vectors.npy", np.array([[9, 9], [1, 1]], np.float32))
    cache = EmbeddingCache(str(tmp_path), "ns", 2)
    assert cache.lookup(["x"]) == ({}, [0])
    cache.add(["x"], np.array([[1, 1]], np.float32))
    assert not (folder / "keys.npy").exists() and not (folder / "vectors.npy").exists()
    assert EmbeddingCache(str(tmp_path), "ns", 2).lookup(["x"])[0][0][0] == 1
