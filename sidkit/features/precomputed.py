"""Item embeddings a user already has, as a view next to (or instead of) the computed ones.

``features.precomputed.<view>``: ``{path: vectors.npy, ids: ids.txt}`` (an ``(n, d)`` float array
and its item ids, one per line, or a ``.npy`` of strings) or ``{path: vectors.parquet,
id_column: item_id, vector_column: embedding}`` (one row per item, the vector a list column).
The view is used like a computed one (``tokenizer.input_views: [<view>]``).

Catalogue items absent from the file have no such view (masked, never imputed) and are counted;
ids in the file but not in the catalogue are ignored and counted. A duplicate id, a vector of
another length or a non-finite value is an error naming the file and the 1-based row.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from sidkit.errors import ConfigError, DataFormatError


class PrecomputedView(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str                          # .npy (with ``ids``) or .parquet; environment variables are expanded
    ids: str | None = None             # .npy vectors: item ids, a text file (one per line) or a .npy of strings
    id_column: str = "item_id"         # parquet
    vector_column: str = "embedding"   # parquet


def _file(name: str) -> Path:
    path = Path(os.path.expandvars(name)).expanduser()
    if not path.is_file():
        raise ConfigError(f"precomputed embeddings file {str(path)!r} does not exist")
    return path


def _read(spec: PrecomputedView) -> tuple[list[str], np.ndarray, Path]:
    path = _file(spec.path)
    if path.suffix == ".parquet":
        import polars as pl

        frame = pl.read_parquet(path)
        for column in (spec.id_column, spec.vector_column):
            if column not in frame.columns:
                raise DataFormatError(str(path), None, column, f"no column {column!r}; the file has {frame.columns}")
        ids = [str(i) for i in frame[spec.id_column].to_list()]
        rows = frame[spec.vector_column].to_list()
        width = len(rows[0]) if rows else 0
        for r, vec in enumerate(rows, start=1):
            if vec is None or len(vec) != width:
                raise DataFormatError(str(path), r, spec.vector_column,
                                      f"vector of length {0 if vec is None else len(vec)}, the first has {width}")
        return ids, np.asarray(rows, dtype=np.float32).reshape(len(rows), width), path
    if path.suffix != ".npy":
        raise ConfigError(f"precomputed embeddings {str(path)!r}: use a .npy (with 'ids') or a .parquet file")
    if spec.ids is None:
        raise ConfigError(f"precomputed embeddings {str(path)!r}: a .npy file needs 'ids' (the item id of each row)")
    vectors = np.load(path, allow_pickle=False)
    if vectors.ndim != 2:
        raise DataFormatError(str(path), None, None, f"expected a 2-d array (items x dims), got shape {vectors.shape}")
    id_path = _file(spec.ids)
    if id_path.suffix == ".npy":
        ids = [str(i) for i in np.load(id_path, allow_pickle=False).tolist()]
    else:
        ids = id_path.read_text(encoding="utf-8").splitlines()
    if len(ids) != len(vectors):
        raise DataFormatError(str(id_path), None, None, f"{len(ids)} ids for {len(vectors)} vectors in {path.name}")
    return ids, vectors.astype(np.float32), path


def load_precomputed(spec: PrecomputedView | dict, item_ids: list[str]) -> tuple[np.ndarray, np.ndarray, dict]:
    """(vectors (n_items, d) in catalogue order, present mask, info) for one precomputed view."""
    spec = spec if isinstance(spec, PrecomputedView) else PrecomputedView.model_validate(spec)
    ids, vectors, path = _read(spec)
    bad = np.flatnonzero(~np.isfinite(vectors).all(1))
    if len(bad):
        raise DataFormatError(str(path), int(bad[0]) + 1, None, f"non-finite value in the vector ({len(bad)} row(s))")
    row_of: dict[str, int] = {}
    for r, item in enumerate(ids):
        if item in row_of:
            raise DataFormatError(str(path), r + 1, spec.id_column, f"item {item!r} appears again (first at row "
                                                                    f"{row_of[item] + 1})")
        row_of[item] = r
    out = np.zeros((len(item_ids), vectors.shape[1]), np.float32)
    present = np.array([i in row_of for i in item_ids])
    rows = [row_of[i] for i in item_ids if i in row_of]
    out[present] = vectors[rows]
    catalogue = set(item_ids)
    info = {"model": "precomputed", "path": str(path), "dim": int(vectors.shape[1]), "sha256": file_sha256(path),
            "n_present": int(present.sum()), "n_missing": int((~present).sum()),
            "n_ignored": sum(1 for i in ids if i not in catalogue)}
    return out, present, info


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def precomputed_fingerprint(features: dict | None) -> str:
    """SHA-256 over the files of every precomputed view, so a file changed in place re-runs the embedding step."""
    digest = hashlib.sha256()
    for name, spec in sorted(((features or {}).get("precomputed") or {}).items()):
        for key in ("path", "ids"):
            if isinstance(spec, dict) and spec.get(key):
                path = Path(os.path.expandvars(spec[key])).expanduser()
                digest.update(f"{name}.{key}\0".encode() + (file_sha256(path).encode() if path.is_file() else b"-"))
    return digest.hexdigest()
