"""MovieLens-100k: GroupLens' own files and RecBole's atomic files (+ IMDb details and posters)."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any, Callable, Iterator

from sidkit.data.loaders.reading import PARSE_ERRORS, Rejects, as_float, as_int, image_for, lines, require
from sidkit.data.schema import Catalogue, interactions_frame, items_frame, order_interactions
from sidkit.errors import DataFormatError

GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


def _delimited(path: Path, sep: str, columns: list[str], converters: dict[str, Callable], table: str,
               rejects: Rejects, encoding: str = "utf-8", header: bool = False,
               min_fields: int | None = None) -> Iterator[tuple[int, dict]]:
    for row, line in lines(path, rejects, table, encoding):
        if (header and row == 1) or not line.strip():
            continue
        rejects.count(table)
        fields = line.split(sep)
        if len(fields) < (min_fields or len(columns)):
            rejects.add(table, path, row, columns[len(fields)] if len(fields) < len(columns) else None,
                        f"expected {len(columns)} fields separated by {sep!r}, got {len(fields)}", line)
            continue
        rec: dict = {}
        for col, value in zip(columns, fields):
            conv = converters.get(col)
            try:
                rec[col] = conv(value.strip()) if conv else value.strip()
            except PARSE_ERRORS as exc:
                rejects.add(table, path, row, col, f"cannot read {value!r}: {exc}", line)
                break
        else:
            yield row, rec


def _interactions(path: Path, sep: str, header: bool, rejects: Rejects) -> list[dict]:
    cols = ["user_id", "item_id", "rating", "timestamp"]
    out = []
    for row, rec in _delimited(path, sep, cols, {"rating": as_float, "timestamp": as_int}, "interactions", rejects,
                               header=header):
        empty = [k for k in ("user_id", "item_id") if not rec[k]]
        if empty:
            rejects.add("interactions", path, row, empty[0], "empty id", rec)
        else:
            out.append({**rec, "_file": str(path), "_row": row})
    return out


def _genre_flag(v: str) -> bool:
    if v not in ("0", "1"):
        raise ValueError("a genre flag must be 0 or 1")
    return v == "1"


def _catalogue(name: str, items: list[dict], inter: list[dict], rejects: Rejects, root: Path) -> Catalogue:
    return Catalogue(name=name, items=items_frame(items), interactions=order_interactions(interactions_frame(inter)),
                     rejected=rejects.frame(), source=str(root), rows_read=dict(rejects.read))


def load_movielens_grouplens(root: str | Path, *, posters: str | Path | None = None,
                             name: str = "movielens-100k") -> Catalogue:
    """GroupLens ``ml-100k``: ``u.data`` (tab-separated) and ``u.item`` (pipe-separated, Latin-1)."""
    root = Path(root)
    rejects = Rejects()
    inter = _interactions(require(root / "u.data", "u.data"), "\t", False, rejects)
    item_path = require(root / "u.item", "u.item")
    cols = ["item_id", "title", "release_date", "video_release_date", "url", *GENRES]
    poster_dir = Path(posters) if posters else (root / "posters" if (root / "posters").is_dir() else None)
    items = []
    for row, rec in _delimited(item_path, "|", cols, {g: _genre_flag for g in GENRES}, "items", rejects,
                               encoding="latin-1"):
        genres = [g for g in GENRES if rec[g] and g != "unknown"]
        attrs = (["Genres: " + ", ".join(genres)] if genres else []) + \
                ([f"Released: {rec['release_date']}"] if rec["release_date"] else [])
        items.append({"item_id": rec["item_id"] or None, "title": rec["title"] or None,
                      "attributes": ". ".join(attrs) or None, "image_path": image_for(poster_dir, rec["item_id"]),
                      "_file": str(item_path), "_row": row})
    return _catalogue(name, items, inter, rejects, root)


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
                return [str(v) for v in ast.literal_eval(s) if v]
            except PARSE_ERRORS:
                return [s]
        return [s] if s else []
    return [str(value)]


def _details(path: Path, rejects: Rejects) -> dict[str, dict]:
    try:
        records = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DataFormatError(str(path), None, f"byte {exc.start + 1}", "not valid UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DataFormatError(str(path), exc.lineno, f"char {exc.colno}", f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise DataFormatError(str(path), None, None, "JSON nested too deeply to read") from None
    if not isinstance(records, list):
        raise DataFormatError(str(path), 1, None, "expected a JSON list of records")
    out: dict[str, dict] = {}
    for i, rec in enumerate(records):
        if isinstance(rec, dict) and rec.get("movie_id") is not None:
            out[str(rec["movie_id"])] = rec
        else:
            rejects.add("details", path, i + 1, "movie_id", "record without movie_id (row = record index)", rec)
    return out


def _check_header(path: Path, expected: list[str]) -> None:
    first = next(lines(path), (1, ""))[1]
    names = [c.split(":")[0] for c in first.split("\t")]
    if names[: len(expected)] != expected:
        raise DataFormatError(str(path), 1, None, f"expected header columns {expected}, got {names}")


def load_movielens_atomic(root: str | Path, *, prefix: str = "ml-100k", details: str | None = "details.json",
                          posters: str | None = "posters", name: str = "movielens-100k") -> Catalogue:
    """RecBole atomic files (``<prefix>.inter``, ``<prefix>.item``) + IMDb ``details.json`` + posters."""
    root = Path(root)
    rejects = Rejects()
    inter_path = require(root / f"{prefix}.inter", f"{prefix}.inter")
    item_path = require(root / f"{prefix}.item", f"{prefix}.item")
    _check_header(inter_path, ["user_id", "item_id", "rating", "timestamp"])
    _check_header(item_path, ["item_id", "movie_title", "release_year", "class"])
    inter = _interactions(inter_path, "\t", True, rejects)
    detail_by_id = _details(root / details, rejects) if details and (root / details).exists() else {}
    poster_dir = root / posters if posters and (root / posters).is_dir() else None
    items = []
    for row, rec in _delimited(item_path, "\t", ["item_id", "title", "release_year", "genres"], {}, "items", rejects,
                               header=True, min_fields=2):
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
                      "image_path": image_for(poster_dir, rec["item_id"]), "_file": str(item_path), "_row": row})
    return _catalogue(name, items, inter, rejects, root)
