"""Loaders from public dataset formats into the canonical :class:`Catalogue`.

Every loader reads line by line and never drops a malformed line silently: a line
that cannot be parsed becomes a row of ``Catalogue.rejected`` naming the file, the
1-based row and the column, with the raw record; ``Catalogue.rows_read`` counts what
was read. Validation then decides (by config) whether the run stops or continues
without those rows.

Formats
    ``amazon2014``          ``reviews_<Cat>_5.json.gz`` (JSON lines) + ``meta_<Cat>.json.gz``
                            (Python-literal lines, read with ``ast.literal_eval``)
    ``amazon2018``          the same pair in strict JSON lines
    ``amazon_sequences``    ``sequences.txt`` (``user item item ...``, oldest first) + ``items.csv``
    ``movielens_grouplens`` GroupLens ``u.data`` + ``u.item`` (pipe-separated, Latin-1)
    ``movielens_atomic``    RecBole atomic ``ml-100k.inter`` + ``ml-100k.item`` (+ ``details.json``,
                            ``posters/<item_id>.jpg``)
    ``table``               any interactions + items tables (CSV, TSV, JSON lines, parquet) with the
                            column names given in ``columns`` (:mod:`sidkit.data.loaders.table`)
    ``synthetic``           see :mod:`sidkit.data.synthetic`

:func:`source_fingerprint` hashes the content of the files a dataset config reads, so a
pipeline's load step re-runs when a file changes in place (its cache key covers the data).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Callable

from sidkit.data.loaders.amazon import load_amazon, load_amazon2014, load_amazon2018
from sidkit.data.loaders.movielens import load_movielens_atomic, load_movielens_grouplens
from sidkit.data.loaders.sequences import load_amazon_sequences
from sidkit.data.loaders.table import load_table
from sidkit.data.schema import Catalogue
from sidkit.errors import ConfigError

__all__ = ["load_amazon", "load_amazon2014", "load_amazon2018", "load_amazon_sequences", "load_dataset",
           "load_movielens_atomic", "load_movielens_grouplens", "load_table", "source_fingerprint", "FORMATS"]

log = logging.getLogger(__name__)


def _amazon(loader):
    def load(path, reviews, meta=None, **kw):
        return loader(Path(path) / reviews, (Path(path) / meta) if meta else None, **kw)
    return load


FORMATS: dict[str, Callable[..., Catalogue]] = {
    "amazon2014": _amazon(load_amazon2014),
    "amazon2018": _amazon(load_amazon2018),
    "amazon_sequences": load_amazon_sequences,
    "movielens_grouplens": load_movielens_grouplens,
    "movielens_atomic": load_movielens_atomic,
    "table": load_table,
}
OPTIONS: dict[str, tuple[str, ...]] = {  # what each format accepts besides format, name and path
    "amazon2014": ("reviews", "meta", "image_dir"),
    "amazon2018": ("reviews", "meta", "image_dir"),
    "amazon_sequences": ("sequences", "items_file", "image_dir"),
    "movielens_grouplens": ("posters",),
    "movielens_atomic": ("prefix", "details", "posters"),
    "table": ("interactions", "items", "columns", "image_dir"),
}


def _source_names(fmt: str, cfg: dict) -> list[str | None]:
    """The files and folders (relative to dataset.path, or absolute) that a format reads."""
    if fmt in ("amazon2014", "amazon2018"):
        return [cfg.get("reviews"), cfg.get("meta"), cfg.get("image_dir")]
    if fmt == "amazon_sequences":
        return [cfg.get("sequences", "sequences.txt"), cfg.get("items_file", "items.csv"), cfg.get("image_dir")]
    if fmt == "movielens_grouplens":
        return ["u.data", "u.item", cfg.get("posters") or "posters"]
    if fmt == "table":
        return [cfg.get("interactions"), cfg.get("items"), cfg.get("image_dir")]
    prefix = cfg.get("prefix", "ml-100k")
    return [f"{prefix}.inter", f"{prefix}.item", cfg.get("details", "details.json"), cfg.get("posters", "posters")]


def dataset_path(cfg: dict) -> Path:
    fmt = cfg.get("format")
    if "path" not in cfg:
        raise ConfigError(f"dataset.path is required for format {fmt!r}")
    path = Path(os.path.expandvars(str(cfg["path"]))).expanduser()
    if not path.exists():
        raise ConfigError(f"dataset.path {str(path)!r} does not exist (set dataset.path in the config)")
    return path


def source_files(config: dict) -> list[Path]:
    """The files and folders a dataset config reads (those that exist); none for ``synthetic``."""
    fmt = config.get("format")
    if fmt == "synthetic":
        return []
    if fmt not in FORMATS:
        raise ConfigError(f"dataset.format must be one of {sorted([*FORMATS, 'synthetic'])}, got {fmt!r}")
    root = dataset_path(config)
    names = [str(n) for n in _source_names(fmt, config) if n]
    return [root / n for n in names if (root / n).exists()]


def source_fingerprint(config: dict) -> str:
    """SHA-256 over the names and bytes of every file a dataset config reads (folders recursively)."""
    h = hashlib.sha256(repr(sorted((k, str(v)) for k, v in config.items())).encode())
    for src in source_files(config):
        files = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
        for f in files:
            h.update(str(f.relative_to(src.parent)).encode() + b"\0")
            with open(f, "rb") as fh:
                h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


def load_dataset(config: dict) -> Catalogue:
    """Load a catalogue from a config dict ``{"format": ..., "path": ..., ...}``.

    Relative paths are resolved against the current directory. Unknown keys are an error.
    ``snapshot: {until: "YYYY-MM", items: seen|all}`` keeps what was known at the end of that
    month (sidkit.data.snapshots), for any format with timestamps.
    """
    from sidkit.data.snapshots import take_snapshot

    cfg = dict(config)
    snapshot = cfg.pop("snapshot", None)
    cat = _load(cfg)
    if snapshot:
        if not isinstance(snapshot, dict) or "until" not in snapshot:
            raise ConfigError(f"dataset.snapshot must be a mapping with 'until: YYYY-MM', got {snapshot!r}")
        cat = take_snapshot(cat, str(snapshot["until"]), snapshot.get("items", "seen"))
        log.info("snapshot %s: %s", cat.name, cat.summary())
    return cat


def _load(cfg: dict) -> Catalogue:
    from sidkit.data.synthetic import SyntheticConfig, generate_catalogue

    fmt = cfg.pop("format", None)
    name = cfg.pop("name", None)
    if fmt == "synthetic":
        return generate_catalogue(SyntheticConfig(**cfg), name=name or "synthetic")
    if fmt not in FORMATS:
        raise ConfigError(f"dataset.format must be one of {sorted([*FORMATS, 'synthetic'])}, got {fmt!r}")
    path = dataset_path(cfg)
    cfg.pop("path")
    loader = FORMATS[fmt]
    accepted = list(OPTIONS[fmt])
    unknown = sorted(set(cfg) - set(accepted))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for dataset format {fmt!r}; it accepts {accepted}")
    cat = loader(path, **cfg)
    if name:
        cat.name = name
    log.info("loaded %s: %s", cat.name, cat.summary())
    return cat
