"""Amazon review datasets: 2014 (metadata as Python literals) and 2018 (strict JSON lines)."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any, Callable

from sidkit.data.loaders.reading import PARSE_ERRORS, Rejects, as_float, as_int, image_for, lines, require
from sidkit.data.schema import Catalogue, interactions_frame, items_frame, order_interactions
from sidkit.errors import ConfigError


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


def _records(path: Path, parse: Callable[[str], Any], table: str, rejects: Rejects):
    """(row, record, line) for each parseable object line; the rest are rejected."""
    for row, line in lines(path, rejects, table):
        if not line.strip():
            continue
        rejects.count(table)
        try:
            rec = parse(line)
            if not isinstance(rec, dict):
                raise ValueError("a record must be an object")
        except PARSE_ERRORS as exc:
            reason = "nested too deeply to read" if isinstance(exc, RecursionError) else f"not a valid record: {exc}"
            rejects.add(table, path, row, None, reason, line)
            continue
        yield row, rec, line


def _read_reviews(path: Path, rejects: Rejects) -> list[dict]:
    rows = []
    for row, rec, line in _records(path, json.loads, "interactions", rejects):
        missing = [c for c in ("reviewerID", "asin") if not rec.get(c)]
        if missing:
            rejects.add("interactions", path, row, missing[0], "required field missing or empty", line)
            continue
        try:
            ts = as_int(rec["unixReviewTime"]) if rec.get("unixReviewTime") is not None else None
        except PARSE_ERRORS as exc:
            rejects.add("interactions", path, row, "unixReviewTime", str(exc), line)
            continue
        try:
            rating = as_float(rec["overall"]) if rec.get("overall") is not None else None
        except PARSE_ERRORS as exc:
            rejects.add("interactions", path, row, "overall", str(exc), line)
            continue
        rows.append({"user_id": str(rec["reviewerID"]), "item_id": str(rec["asin"]), "timestamp": ts,
                     "rating": rating, "_file": str(path), "_row": row})
    return rows


def _read_meta(path: Path, parse: Callable[[str], Any], rejects: Rejects, image_dir: Path | None,
               wanted: set[str]) -> list[dict]:
    rows = []
    for row, rec, line in _records(path, parse, "items", rejects):
        asin = rec.get("asin")
        if not asin:
            rejects.add("items", path, row, "asin", "required field missing or empty", line)
            continue
        asin = str(asin)
        if asin not in wanted:
            rejects.read["items"] -= 1  # meta files cover the whole category; only reviewed items are read
            continue
        attrs = [f"Brand: {b}" for b in [_flatten_text(rec.get("brand"))] if b]
        cats = _flatten_text(rec.get("categories") or rec.get("category"))
        if cats:
            attrs.append(f"Categories: {cats}")
        rows.append({"item_id": asin, "title": _flatten_text(rec.get("title")),
                     "description": _flatten_text(rec.get("description")), "attributes": ". ".join(attrs) or None,
                     "image_path": image_for(image_dir, asin), "_file": str(path), "_row": row})
    return rows


def load_amazon(reviews: str | Path, meta: str | Path | None = None, *, meta_format: str = "python",
                image_dir: str | Path | None = None, name: str | None = None) -> Catalogue:
    """Amazon review + metadata files (2014: ``meta_format="python"``, 2018: ``"json"``).

    Items that were reviewed but are absent from the metadata get an items row with
    null text, so validation (not the loader) decides what to do with them.
    """
    if meta_format not in ("python", "json"):
        raise ConfigError(f"meta_format must be 'python' or 'json', got {meta_format!r}")
    reviews = require(Path(reviews), "reviews file")
    parse_meta = ast.literal_eval if meta_format == "python" else json.loads
    rejects = Rejects()
    inter = _read_reviews(reviews, rejects)
    wanted = {r["item_id"] for r in inter}
    items: list[dict] = []
    if meta is not None:
        items = _read_meta(require(Path(meta), "metadata file"), parse_meta, rejects,
                           Path(image_dir) if image_dir else None, wanted)
    known = {r["item_id"] for r in items}
    first_row: dict[str, int] = {}
    for r in inter:
        first_row.setdefault(r["item_id"], r["_row"])
    for item in sorted(wanted - known):  # provenance: the first review of the item
        items.append({"item_id": item, "_file": str(reviews), "_row": first_row[item]})
        rejects.count("items")
    return Catalogue(name=name or reviews.name.split(".")[0], items=items_frame(items),
                     interactions=order_interactions(interactions_frame(inter)), rejected=rejects.frame(),
                     source=str(reviews), rows_read=dict(rejects.read))


def load_amazon2014(reviews: str | Path, meta: str | Path | None = None, **kw) -> Catalogue:
    """Official 2014 release: reviews are JSON lines, metadata lines are Python literals."""
    return load_amazon(reviews, meta, meta_format="python", **kw)


def load_amazon2018(reviews: str | Path, meta: str | Path | None = None, **kw) -> Catalogue:
    """2018 release: both files are strict JSON lines."""
    return load_amazon(reviews, meta, meta_format="json", **kw)
