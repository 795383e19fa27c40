"""Loaders from public dataset formats into the canonical :class:`Catalogue`.

Every loader reads line by line and never drops a malformed line silently: a line
that cannot be parsed becomes a row of ``Catalogue.rejected`` naming the file, the
1-based row and the column, with the raw record. Validation then decides (by
config) whether the run stops or continues without those rows.

Formats
    ``amazon2014``          ``reviews_<Cat>_5.json.gz`` (JSON lines) + ``meta_<Cat>.json.gz``
                            (Python-literal lines, read with ``ast.literal_eval``)
    ``amazon2018``          the same pair in strict JSON lines
    ``amazon_sequences``    ``sequences.txt`` (``user item item ...``, oldest first) + ``items.csv``
    ``movielens_grouplens`` GroupLens ``u.data`` + ``u.item`` (pipe-separated, Latin-1)
    ``movielens_atomic``    RecBole atomic ``ml-100k.inter`` + ``ml-100k.item`` (+ ``details.json``,
                            ``posters/<item_id>.jpg``)
    ``synthetic``           see :mod:`sidkit.data.synthetic`
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import logging
import os
from pathlib import Path

import polars as pl
from typing import Any, Callable, Iterator

from sidkit.data.schema import (
    Catalogue,
    interactions_frame,
    items_frame,
    order_interactions,
    rejected_frame,
)
from sidkit.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

MOVIELENS_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


class _Rejects:
    """Collects the rows a loader could not parse."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, table: str, file: Path | str, row: int, column: str | None, reason: str, record: Any) -> None:
        self.rows.append({
            "table": table, "file": str(file), "row": row, "column": column,
            "check": "parse", "reason": reason, "record": str(record)[:500],
        })

    def frame(self):
        return rejected_frame(self.rows)


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataFormatError(str(path), None, None, f"{what} not found")
    return path


def _open_text(path: Path, encoding: str = "utf-8") -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, errors="strict")
    return open(path, encoding=encoding, errors="strict", newline="")


def _lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(1-based row, line) pairs; a decoding error names the row."""
    row = 0
    with _open_text(path, encoding) as fh:
        while True:
            try:
                line = fh.readline()
            except UnicodeDecodeError as exc:
                raise DataFormatError(str(path), row + 1, None, f"not valid {encoding} text ({exc.reason})") from exc
            if not line:
                return
            row += 1
            yield row, line.rstrip("\r\n")


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("boolean is not a number")
    if isinstance(value, (int,)):
        return value
    f = float(value)
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    if not f.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(f)


def _as_float(value: Any) -> float:
    f = float(value)
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return f


def _image_for(image_dir: Path | None, item_id: str, suffixes=(".jpg", ".jpeg", ".png")) -> str | None:
    if image_dir is None:
        return None
    for s in suffixes:
        p = image_dir / f"{item_id}{s}"
        if p.exists():
            return str(p.resolve())
    return None


# ---------------------------------------------------------------- Amazon (2014 / 2018)

def _flatten_text(value: Any) -> str | None:
    """Amazon fields are strings, lists of strings or lists of lists (categories)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (list, tuple)):
        parts: list[str] = []
        for v in value:
            t = _flatten_text(v)
            if t and t not in parts:
                parts.append(t)
        return ", ".join(parts) or None
    return str(value)


def _read_amazon_reviews(path: Path, parse: Callable[[str], Any], rejects: _Rejects) -> list[dict]:
    rows = []
    for row, line in _lines(path):
        if not line.strip():
            continue
        try:
            rec = parse(line)
            if not isinstance(rec, dict):
                raise ValueError("a record must be an object")
        except (ValueError, SyntaxError, json.JSONDecodeError) as exc:
            rejects.add("interactions", path, row, None, f"not a valid record: {exc}", line)
            continue
        missing = [c for c in ("reviewerID", "asin") if not rec.get(c)]
        if missing:
            rejects.add("interactions", path, row, missing[0], "required field missing or empty", line)
            continue
        try:
            ts = _as_int(rec["unixReviewTime"]) if rec.get("unixReviewTime") is not None else None
        except (TypeError, ValueError) as exc:
            rejects.add("interactions", path, row, "unixReviewTime", str(exc), line)
            continue
        try:
            rating = _as_float(rec["overall"]) if rec.get("overall") is not None else None
        except (TypeError, ValueError) as exc:
            rejects.add("interactions", path, row, "overall", str(exc), line)
            continue
        rows.append({"user_id": str(rec["reviewerID"]), "item_id": str(rec["asin"]), "timestamp": ts,
                     "rating": rating, "_file": str(path), "_row": row})
    return rows


def _read_amazon_meta(path: Path, parse: Callable[[str], Any], rejects: _Rejects,
                      image_dir: Path | None, wanted: set[str] | None) -> list[dict]:
    rows = []
    for row, line in _lines(path):
        if not line.strip():
            continue
        try:
            rec = parse(line)
            if not isinstance(rec, dict):
                raise ValueError("a record must be an object")
        except (ValueError, SyntaxError, json.JSONDecodeError) as exc:
            rejects.add("items", path, row, None, f"not a valid record: {exc}", line)
            continue
        asin = rec.get("asin")
        if not asin:
            rejects.add("items", path, row, "asin", "required field missing or empty", line)
            continue
        asin = str(asin)
        if wanted is not None and asin not in wanted:
            continue  # meta files cover the whole category; keep the items that were reviewed
        attrs = [f"Brand: {b}" for b in [_flatten_text(rec.get("brand"))] if b]
        cats = _flatten_text(rec.get("categories") or rec.get("category"))
        if cats:
            attrs.append(f"Categories: {cats}")
        rows.append({
            "item_id": asin,
            "title": _flatten_text(rec.get("title")),
            "description": _flatten_text(rec.get("description")),
            "attributes": ". ".join(attrs) or None,
            "image_path": _image_for(image_dir, asin),
            "_file": str(path), "_row": row,
        })
    return rows


def load_amazon(reviews: str | Path, meta: str | Path | None = None, *, meta_format: str = "python",
                image_dir: str | Path | None = None, name: str | None = None) -> Catalogue:
    """Amazon review + metadata files (2014: ``meta_format="python"``, 2018: ``"json"``).

    Items that were reviewed but are absent from the metadata get an items row with
    null text, so validation (not the loader) decides what to do with them.
    """
    reviews = _require(Path(reviews), "reviews file")
    parse_meta = ast.literal_eval if meta_format == "python" else json.loads
    if meta_format not in ("python", "json"):
        raise ConfigError(f"meta_format must be 'python' or 'json', got {meta_format!r}")
    rejects = _Rejects()
    inter = _read_amazon_reviews(reviews, json.loads, rejects)
    wanted = {r["item_id"] for r in inter}
    items: list[dict] = []
    if meta is not None:
        items = _read_amazon_meta(_require(Path(meta), "metadata file"), parse_meta, rejects,
                                  Path(image_dir) if image_dir else None, wanted)
    known = {r["item_id"] for r in items}
    for item in sorted(wanted - known):
        items.append({"item_id": item, "_file": str(reviews), "_row": None})
    return Catalogue(
        name=name or reviews.name.split(".")[0],
        items=items_frame(items),
        interactions=order_interactions(interactions_frame(inter)),
        rejected=rejects.frame(),
        source=str(reviews),
    )


def load_amazon2014(reviews: str | Path, meta: str | Path | None = None, **kw) -> Catalogue:
    """Official 2014 release: reviews are JSON lines, metadata lines are Python literals."""
    return load_amazon(reviews, meta, meta_format="python", **kw)


def load_amazon2018(reviews: str | Path, meta: str | Path | None = None, **kw) -> Catalogue:
    """2018 release: both files are strict JSON lines."""
    return load_amazon(reviews, meta, meta_format="json", **kw)


# ---------------------------------------------------------------- sequence format

def load_amazon_sequences(root: str | Path, *, sequences: str = "sequences.txt", items_file: str = "items.csv",
                          image_dir: str | Path | None = None, name: str | None = None) -> Catalogue:
    """``sequences.txt`` (``user item1 item2 ...`` oldest first) + ``items.csv`` (``asin,title``)."""
    root = Path(root)
    seq_path = _require(root / sequences, "sequence file")
    items_path = _require(root / items_file, "items file")
    rejects = _Rejects()
    inter: list[dict] = []
    for row, line in _lines(seq_path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            rejects.add("interactions", seq_path, row, "items", "a user line needs at least one item", line)
            continue
        user = parts[0]
        for item in parts[1:]:
            inter.append({"user_id": user, "item_id": item, "_file": str(seq_path), "_row": row})
    items: list[dict] = []
    with _open_text(items_path) as fh:
        try:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or [h.strip().lower() for h in header[:2]] != ["asin", "title"]:
                raise DataFormatError(str(items_path), 1, None, f"expected header 'asin,title', got {header!r}")
            for record in reader:
                row = reader.line_num
                if not record:
                    continue
                if len(record) != 2:
                    rejects.add("items", items_path, row, "title" if len(record) < 2 else None,
                                f"expected 2 fields (asin,title), got {len(record)}", record)
                    continue
                items.append({"item_id": record[0].strip(), "title": record[1].strip() or None,
                              "image_path": _image_for(Path(image_dir) if image_dir else None, record[0].strip()),
                              "_file": str(items_path), "_row": row})
        except csv.Error as exc:
            raise DataFormatError(str(items_path), reader.line_num, None, f"CSV error: {exc}") from exc
    df = interactions_frame(inter)
    # no timestamps: the position in the line is the order; keep the file order
    df = df.sort(["_row"], maintain_order=True)
    df = df.with_columns(pl.int_range(pl.len()).over("user_id").cast(pl.Int64).alias("position"))
    return Catalogue(name=name or root.name, items=items_frame(items), interactions=df,
                     rejected=rejects.frame(), source=str(root))


# ---------------------------------------------------------------- MovieLens

def _parse_delimited(path: Path, sep: str, columns: list[str], converters: dict[str, Callable],
                     table: str, rejects: _Rejects, encoding: str = "utf-8", header: bool = False,
                     min_fields: int | None = None) -> Iterator[tuple[int, dict]]:
    for row, line in _lines(path, encoding):
        if header and row == 1:
            continue
        if not line.strip():
            continue
        fields = line.split(sep)
        need = min_fields or len(columns)
        if len(fields) < need:
            rejects.add(table, path, row, columns[len(fields)] if len(fields) < len(columns) else None,
                        f"expected {len(columns)} fields separated by {sep!r}, got {len(fields)}", line)
            continue
        rec: dict = {}
        bad = False
        for col, value in zip(columns, fields):
            conv = converters.get(col)
            try:
                rec[col] = conv(value.strip()) if conv else value.strip()
            except (TypeError, ValueError) as exc:
                rejects.add(table, path, row, col, f"cannot read {value!r}: {exc}", line)
                bad = True
                break
        if not bad:
            yield row, rec


def _ml_interactions(path: Path, sep: str, header: bool, rejects: _Rejects) -> list[dict]:
    cols = ["user_id", "item_id", "rating", "timestamp"]
    conv = {"rating": _as_float, "timestamp": _as_int}
    out = []
    for row, rec in _parse_delimited(path, sep, cols, conv, "interactions", rejects, header=header):
        for key in ("user_id", "item_id"):
            if not rec[key]:
                rejects.add("interactions", path, row, key, "empty id", rec)
                break
        else:
            out.append({**rec, "_file": str(path), "_row": row})
    return out


def load_movielens_grouplens(root: str | Path, *, posters: str | Path | None = None,
                             name: str = "movielens-100k") -> Catalogue:
    """GroupLens ``ml-100k``: ``u.data`` (tab-separated) and ``u.item`` (pipe-separated, Latin-1)."""
    root = Path(root)
    rejects = _Rejects()
    inter = _ml_interactions(_require(root / "u.data", "u.data"), "\t", False, rejects)
    item_path = _require(root / "u.item", "u.item")
    cols = ["item_id", "title", "release_date", "video_release_date", "url", *MOVIELENS_GENRES]
    conv = {g: _genre_flag for g in MOVIELENS_GENRES}
    poster_dir = Path(posters) if posters else (root / "posters" if (root / "posters").is_dir() else None)
    items = []
    for row, rec in _parse_delimited(item_path, "|", cols, conv, "items", rejects, encoding="latin-1"):
        genres = [g for g in MOVIELENS_GENRES if rec[g] and g != "unknown"]
        attrs = []
        if genres:
            attrs.append("Genres: " + ", ".join(genres))
        if rec["release_date"]:
            attrs.append(f"Released: {rec['release_date']}")
        items.append({"item_id": rec["item_id"] or None, "title": rec["title"] or None,
                      "attributes": ". ".join(attrs) or None, "image_path": _image_for(poster_dir, rec["item_id"]),
                      "_file": str(item_path), "_row": row})
    return Catalogue(name=name, items=items_frame(items),
                     interactions=order_interactions(interactions_frame(inter)),
                     rejected=rejects.frame(), source=str(root))


def _genre_flag(v: str) -> bool:
    if v not in ("0", "1"):
        raise ValueError("a genre flag must be 0 or 1")
    return v == "1"


def _literal_list(value: Any) -> list[str]:
    """details.json stores some lists as Python-literal strings ("['David Lean']")."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v]
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("["):
            try:
                parsed = ast.literal_eval(s)
                return [str(v) for v in parsed if v]
            except (ValueError, SyntaxError):
                return [s]
        return [s] if s else []
    return [str(value)]


def load_movielens_atomic(root: str | Path, *, prefix: str = "ml-100k", details: str | None = "details.json",
                          posters: str | None = "posters", name: str = "movielens-100k") -> Catalogue:
    """RecBole atomic files (``<prefix>.inter``, ``<prefix>.item``) + IMDb ``details.json`` + posters."""
    root = Path(root)
    rejects = _Rejects()
    inter_path = _require(root / f"{prefix}.inter", f"{prefix}.inter")
    item_path = _require(root / f"{prefix}.item", f"{prefix}.item")
    _check_header(inter_path, ["user_id", "item_id", "rating", "timestamp"])
    _check_header(item_path, ["item_id", "movie_title", "release_year", "class"])
    inter = _ml_interactions(inter_path, "\t", True, rejects)
    detail_by_id: dict[str, dict] = {}
    if details and (root / details).exists():
        dpath = root / details
        try:
            records = json.loads(dpath.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataFormatError(str(dpath), exc.lineno, f"char {exc.colno}", f"invalid JSON: {exc.msg}") from exc
        if not isinstance(records, list):
            raise DataFormatError(str(dpath), 1, None, "expected a JSON list of records")
        for i, rec in enumerate(records):
            if isinstance(rec, dict) and rec.get("movie_id") is not None:
                detail_by_id[str(rec["movie_id"])] = rec
            else:
                rejects.add("items", dpath, i + 1, "movie_id", "record without movie_id (row = record index)", rec)
    poster_dir = root / posters if posters and (root / posters).is_dir() else None
    items = []
    cols = ["item_id", "title", "release_year", "genres"]
    for row, rec in _parse_delimited(item_path, "\t", cols, {}, "items", rejects, header=True, min_fields=2):
        d = detail_by_id.get(rec["item_id"], {})
        attrs = []
        if rec.get("genres"):
            attrs.append("Genres: " + ", ".join(rec["genres"].split()))
        if rec.get("release_year"):
            attrs.append(f"Year: {rec['release_year']}")
        for key, label in (("director", "Director"), ("cast", "Cast")):
            names = _literal_list(d.get(key))[:5]
            if names:
                attrs.append(f"{label}: " + ", ".join(names))
        items.append({"item_id": rec["item_id"] or None, "title": rec["title"] or None,
                      "description": (d.get("description") or None), "attributes": ". ".join(attrs) or None,
                      "image_path": _image_for(poster_dir, rec["item_id"]),
                      "_file": str(item_path), "_row": row})
    return Catalogue(name=name, items=items_frame(items),
                     interactions=order_interactions(interactions_frame(inter)),
                     rejected=rejects.frame(), source=str(root))


def _check_header(path: Path, expected: list[str]) -> None:
    with _open_text(path) as fh:
        first = fh.readline().rstrip("\r\n")
    names = [c.split(":")[0] for c in first.split("\t")]
    if names[: len(expected)] != expected:
        raise DataFormatError(str(path), 1, None, f"expected header columns {expected}, got {names}")


# ---------------------------------------------------------------- dispatch

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
    loaders: dict[str, Callable[..., Catalogue]] = {
        "amazon2014": lambda path, reviews, meta=None, **kw: load_amazon2014(Path(path) / reviews, (Path(path) / meta) if meta else None, **kw),
        "amazon2018": lambda path, reviews, meta=None, **kw: load_amazon2018(Path(path) / reviews, (Path(path) / meta) if meta else None, **kw),
        "amazon_sequences": load_amazon_sequences,
        "movielens_grouplens": load_movielens_grouplens,
        "movielens_atomic": load_movielens_atomic,
    }
    if fmt == "synthetic":
        return generate_catalogue(SyntheticConfig(**cfg), name=name or "synthetic")
    if fmt not in loaders:
        raise ConfigError(f"dataset.format must be one of {sorted([*loaders, 'synthetic'])}, got {fmt!r}")
    if "path" not in cfg:
        raise ConfigError(f"dataset.path is required for format {fmt!r}")
    path = Path(os.path.expandvars(str(cfg.pop("path")))).expanduser()
    if not path.exists():
        raise ConfigError(f"dataset.path {str(path)!r} does not exist (set dataset.path in the config)")
    try:
        cat = loaders[fmt](path, **cfg)
    except TypeError as exc:
        raise ConfigError(f"bad options for dataset format {fmt!r}: {exc}") from exc
    if name:
        cat.name = name
    log.info("loaded %s: %s", cat.name, cat.summary())
    return cat
