"""A content-addressed embedding cache: an unchanged input is never encoded twice.

Keys are SHA-256 digests of the encoder's input (a text, or an image file's bytes),
namespaced by encoder name and version, so a catalogue that gains 10 items re-encodes
10 items. Stored as two .npy files per encoder (keys, vectors); writes are atomic.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np


def digest(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


class EmbeddingCache:
    def __init__(self, root: str | Path | None, namespace: str):
        self.dir = Path(root) / namespace if root else None
        self._keys: dict[str, int] = {}
        self._vecs: np.ndarray | None = None
        if self.dir and (self.dir / "keys.npy").exists():
            keys = np.load(self.dir / "keys.npy", allow_pickle=False)
            self._vecs = np.load(self.dir / "vectors.npy", allow_pickle=False)
            self._keys = {str(k): i for i, k in enumerate(keys)}

    def lookup(self, keys: list[str]) -> tuple[dict[int, np.ndarray], list[int]]:
        """(found: position -> vector, missing positions)."""
        found, missing = {}, []
        for pos, k in enumerate(keys):
            i = self._keys.get(k)
            if i is None:
                missing.append(pos)
            else:
                found[pos] = self._vecs[i]
        return found, missing

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        if not keys:
            return
        new = [(k, v) for k, v in zip(keys, vectors) if k not in self._keys]
        if not new:
            return
        start = len(self._keys)
        add_vecs = np.stack([v for _, v in new]).astype(np.float32)
        self._vecs = add_vecs if self._vecs is None else np.concatenate([self._vecs, add_vecs])
        for j, (k, _) in enumerate(new):
            self._keys[k] = start + j
        if self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)
            all_keys = np.array(sorted(self._keys, key=self._keys.get))
            for name, arr in (("keys.npy", all_keys), ("vectors.npy", self._vecs)):
                tmp = self.dir / f".{name}.{os.getpid()}.tmp.npy"
                np.save(tmp, arr, allow_pickle=False)
                os.replace(tmp, self.dir / name)
