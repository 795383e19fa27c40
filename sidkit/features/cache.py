"""A content-addressed embedding cache: an unchanged input is never encoded twice.

Keys are SHA-256 digests of the encoder's input (a text, or an image file's bytes),
namespaced by encoder name and version, so a catalogue that gains 10 items re-encodes
10 items.

Integrity (each guarantee is tested):

* **one entry per key**: duplicate inputs within one call (two items with the same title)
  store one vector; a key already present is never stored again.
* **one file, one atomic write**: keys, vectors and a SHA-256 checksum of both live in a
  single ``cache.npz`` written to a temporary file and renamed over the old one, so a kill
  leaves either the old or the new cache, never keys from one and vectors from another.
* **one writer at a time**: writers hold an exclusive lock on ``cache.lock`` and merge with
  what is on disk, so two runs adding different inputs keep both.
* **checked on load**: key count = vector rows, keys unique, the vector width the encoder's,
  and the checksum; anything else raises :class:`CorruptCacheError` naming the file.

The earlier two-file layout (``keys.npy`` + ``vectors.npy``) could hold fewer keys than
vectors (the duplicate-input bug); it is never read and is removed at the next write.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from sidkit.errors import SidkitError
from sidkit.utils import log

CACHE_FILE = "cache.npz"
LEGACY_FILES = ("keys.npy", "vectors.npy")


class CorruptCacheError(SidkitError):
    """The cache file on disk is inconsistent; it is refused, never used."""


def digest(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _checksum(keys: np.ndarray, vectors: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(keys).tobytes())
    h.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    return h.hexdigest()


def _read(path: Path, dim: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(keys, vectors) from ``path``, verified; :class:`CorruptCacheError` if anything is off."""
    fix = f"delete {path} (it is only a cache) and run again"
    try:
        with np.load(path, allow_pickle=False) as z:
            keys, vectors, stored = z["keys"], z["vectors"], str(z["checksum"])
    except Exception as exc:  # truncated zip, missing member, not an npz at all
        raise CorruptCacheError(f"embedding cache {path} cannot be read ({type(exc).__name__}: {exc}); {fix}") from None
    problems = []
    if keys.ndim != 1 or vectors.ndim != 2:
        problems.append(f"keys have shape {keys.shape} and vectors {vectors.shape}")
    elif len(keys) != len(vectors):
        problems.append(f"{len(keys)} keys for {len(vectors)} vectors")
    elif len(np.unique(keys)) != len(keys):
        problems.append(f"{len(keys) - len(np.unique(keys))} duplicate key(s)")
    elif dim is not None and len(vectors) and vectors.shape[1] != dim:
        problems.append(f"vectors are {vectors.shape[1]}-d, the encoder gives {dim}-d")
    elif _checksum(keys, vectors) != stored:
        problems.append("checksum mismatch (the file was changed or partly written)")
    if problems:
        raise CorruptCacheError(f"embedding cache {path} is corrupt: {problems[0]}; {fix}")
    return keys, vectors.astype(np.float32, copy=False)


class EmbeddingCache:
    """Vectors by key for one encoder (``namespace``); ``root=None`` keeps them in memory only."""

    def __init__(self, root: str | Path | None, namespace: str, dim: int | None = None):
        self.dir = Path(root) / namespace if root else None
        self.dim = dim
        self._index: dict[str, int] = {}
        self._vecs = np.zeros((0, dim or 0), np.float32)
        if self.dir is None:
            return
        if (self.dir / CACHE_FILE).exists():
            self._set(*_read(self.dir / CACHE_FILE, dim))
        elif any((self.dir / f).exists() for f in LEGACY_FILES):
            log.warning("embedding cache %s is in the old two-file layout, which could pair keys with the wrong "
                        "vectors; it is ignored and replaced at the next write", self.dir)

    def __len__(self) -> int:
        return len(self._index)

    def _set(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self._index = {str(k): i for i, k in enumerate(keys)}
        self._vecs = vectors

    def lookup(self, keys: list[str]) -> tuple[dict[int, np.ndarray], list[int]]:
        """(found: position -> vector, missing positions)."""
        found, missing = {}, []
        for pos, k in enumerate(keys):
            i = self._index.get(k)
            if i is None:
                missing.append(pos)
            else:
                found[pos] = self._vecs[i]
        return found, missing

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        """Store each new key once (the first vector given for it) and persist atomically."""
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        if self.dir is None:
            self._merge(keys, vectors)
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._write_lock():
            if (self.dir / CACHE_FILE).exists():  # another writer may have added entries since we loaded
                self._set(*_read(self.dir / CACHE_FILE, self.dim))
            if not self._merge(keys, vectors) and (self.dir / CACHE_FILE).exists():
                return
            self._write()

    def _merge(self, keys: list[str], vectors: np.ndarray) -> bool:
        new_keys, rows = [], []
        for k, v in zip(keys, vectors):
            if k not in self._index:
                self._index[k] = len(self._vecs) + len(rows)
                new_keys.append(k)
                rows.append(np.asarray(v, np.float32))
        if rows:
            stacked = np.stack(rows)
            self._vecs = stacked if len(self._vecs) == 0 else np.concatenate([self._vecs, stacked])
        return bool(rows)

    def _write(self) -> None:
        keys = np.array(sorted(self._index, key=self._index.get), dtype=str)
        tmp = self.dir / f".{CACHE_FILE}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, keys=keys, vectors=self._vecs, checksum=np.array(_checksum(keys, self._vecs)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / CACHE_FILE)
        for name in LEGACY_FILES:
            (self.dir / name).unlink(missing_ok=True)

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        with open(self.dir / "cache.lock", "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
