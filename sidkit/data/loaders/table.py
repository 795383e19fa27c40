"""Any catalogue as two tables: interactions and items, in CSV, TSV, JSON lines or parquet.

``dataset: {format: table, path: DIR, interactions: FILE, items: FILE, columns: {...}}``; which
column holds what is configuration (:class:`TableColumns`), so a catalogue with other column names
or more columns needs no converter. The reader is chosen by the file name: ``.csv``, ``.tsv`` /
``.tab``, ``.jsonl`` / ``.ndjson`` / ``.json`` (one object per line), each optionally ``.gz``, and
``.parquet``. Other columns are ignored.

Text: the first of ``columns.text`` becomes the item's ``title``; the others go to ``description``
as ``column: value`` lines (embed both with ``features.text.fields: [title, description]``).
Images: ``columns.image`` holds a path relative to ``image_dir`` (default: the dataset folder); a
path that leaves that folder, or a file that does not exist, is "no image", never an error.

Rows are read one at a time and none is lost: a row that cannot be parsed (bad bytes, a broken
quote, a missing id, a non-numeric timestamp) is rejected with file, 1-based row (the CSV header
is row 1) and column; a header without a configured column is one error naming the file.
CSV fields may hold quoted line breaks; the row named is the line the record starts on.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict, Field

from sidkit.data.loaders.reading import PARSE_ERRORS, Rejects, as_float, as_int, lines, require
from sidkit.data.schema import Catalogue, interactions_frame, items_frame, order_interactions
from sidkit.errors import DataFormatError


class TableColumns(BaseModel):
    """Which column holds what; only ``user_id`` and ``item_id`` are required."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str = "user_id"
    item_id: str = "item_id"                  # in the interactions table
    timestamp: str | None = None              # whole seconds (or any increasing integer); None: file order
    rating: str | None = None
    item_key: str | None = None               # the item id column of the items table (default: item_id)
    text: list[str] = Field(default_factory=lambda: ["title"], min_length=1)
    image: str | None = None                  # image path relative to image_dir


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _records(path: Path, rejects: Rejects, table: str, needed: list[str]) -> Iterator[tuple[int, dict]]:
    """(1-based row, {column: value}) of every record of a table file; unparseable rows are rejected."""
    kind = _suffix(path)
    if kind == ".parquet":
        yield from _parquet(path, rejects, table, needed)
    elif kind in (".csv", ".tsv", ".tab", ".txt"):
        yield from _delimited(path, rejects, table, needed, "," if kind == ".csv" else "\t")
    elif kind in (".jsonl", ".ndjson", ".json"):
        yield from _json_lines(path, rejects, table, needed)
    else:
        raise DataFormatError(str(path), None, None, f"unknown table format {kind or '(no suffix)'!r}; use .csv, .tsv, "
                                                     ".jsonl or .parquet (text formats may end in .gz)")


def _missing(path: Path, header: list[str], needed: list[str]) -> None:
    absent = [c for c in needed if c not in header]
    if absent:
        raise DataFormatError(str(path), 1, absent[0], f"no column {absent[0]!r} (configured in dataset.columns); "
                                                       f"the file has {header}")


def _delimited(path: Path, rejects: Rejects, table: str, needed: list[str], delimiter: str) -> Iterator[tuple[int, dict]]:
    starts: list[int] = []          # the physical row of each decoded line fed to the csv reader
    current: list[str] = []         # the lines of the record being read (for a rejected record's text)

    def feed():
        for row, text in lines(path, rejects, table):
            starts.append(row)
            current.append(text)
            yield text + "\n"          # the reader needs the break to keep it inside a quoted field

    reader = csv.reader(feed(), delimiter=delimiter, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataFormatError(str(path), None, None, "the file is empty") from None
    except csv.Error as exc:
        raise DataFormatError(str(path), 1, None, f"unreadable header ({exc})") from None
    _missing(path, header, needed)
    while True:
        first = len(starts)            # the record starts on the next line the reader takes
        current.clear()
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row = starts[first] if first < len(starts) else (starts[-1] if starts else 1)
            span = f" (rows {row}-{starts[-1]} read as one record: a quote opened and never closed?)" \
                if starts and starts[-1] > row else ""
            rejects.count(table)
            rejects.add(table, path, row, None, f"CSV error: {exc}{span}", "\n".join(current))
            continue
        row = starts[first] if first < len(starts) else starts[-1]
        if not any(field.strip() for field in record):
            continue
        rejects.count(table)
        if len(record) != len(header):
            rejects.add(table, path, row, None, f"expected {len(header)} fields like the header, got {len(record)}",
                        delimiter.join(record))
            continue
        yield row, dict(zip(header, record))


def _json_lines(path: Path, rejects: Rejects, table: str, needed: list[str]) -> Iterator[tuple[int, dict]]:
    never = set(needed)             # configured columns no object has had so far
    for row, text in lines(path, rejects, table):
        if not text.strip():
            continue
        rejects.count(table)
        try:
            record = json.loads(text)
        except PARSE_ERRORS as exc:
            rejects.add(table, path, row, None, f"not a JSON object: {str(exc)[:200]}", text)
            continue
        if not isinstance(record, dict):
            rejects.add(table, path, row, None, f"expected a JSON object, got {type(record).__name__}", text)
            continue
        never -= record.keys()
        yield row, record
    if never:   # a misnamed column would otherwise read as "missing in every row"
        missing = sorted(never)[0]
        raise DataFormatError(str(path), None, missing, f"no object has the key {missing!r} (configured in dataset.columns)")


def _parquet(path: Path, rejects: Rejects, table: str, needed: list[str]) -> Iterator[tuple[int, dict]]:
    import polars as pl

    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - polars raises several types for a bad file
        raise DataFormatError(str(path), None, None, f"not a readable parquet file ({type(exc).__name__}: {exc})") from None
    _missing(path, frame.columns, needed)
    for i, record in enumerate(frame.select(needed).iter_rows(named=True), start=1):   # no header: row 1 = first
        rejects.count(table)
        yield i, record


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _image(image_dir: Path, value: Any) -> str | None:
    name = _text(value)
    if name is None:
        return None
    root = image_dir.resolve()
    path = (image_dir / name).resolve()
    return str(path) if path.is_relative_to(root) and path.is_file() else None


def load_table(root: str | Path, *, interactions: str, items: str, columns: dict | TableColumns | None = None,
               image_dir: str | Path | None = None, name: str | None = None) -> Catalogue:
    root = Path(root)
    cols = columns if isinstance(columns, TableColumns) else TableColumns.model_validate(columns or {})
    rejects = Rejects()
    inter_path = require(root / interactions, "interactions file")
    inter_cols = [c for c in (cols.user_id, cols.item_id, cols.timestamp, cols.rating) if c]
    inter: list[dict] = []
    for row, record in _records(inter_path, rejects, "interactions", inter_cols):
        out: dict = {"_file": str(inter_path), "_row": row}
        try:
            for key, column in (("user_id", cols.user_id), ("item_id", cols.item_id)):
                value = _text(record.get(column))
                if value is None:
                    raise _Bad(column, f"empty {key}")
                out[key] = value
            for key, column, parse in (("timestamp", cols.timestamp, as_int), ("rating", cols.rating, as_float)):
                if column and _text(record.get(column)) is not None:
                    try:
                        out[key] = parse(record[column])
                    except PARSE_ERRORS as exc:
                        raise _Bad(column, f"{key}: {exc}") from None
        except _Bad as bad:
            rejects.add("interactions", inter_path, row, bad.column, bad.reason, record)
            continue
        inter.append(out)
    items_path = require(root / items, "items file")
    key = cols.item_key or cols.item_id
    images = Path(image_dir) if image_dir else root
    item_rows: list[dict] = []
    for row, record in _records(items_path, rejects, "items", [key, *cols.text, *([cols.image] if cols.image else [])]):
        item_id = _text(record.get(key))
        if item_id is None:
            rejects.add("items", items_path, row, key, "empty item id", record)
            continue
        texts = [(c, _text(record.get(c))) for c in cols.text]
        extra = "\n".join(f"{c}: {v}" for c, v in texts[1:] if v is not None)
        item_rows.append({"item_id": item_id, "title": texts[0][1], "description": extra or None,
                          "image_path": _image(images, record.get(cols.image)) if cols.image else None,
                          "_file": str(items_path), "_row": row})
    df = order_interactions(interactions_frame(inter)) if inter else interactions_frame([])
    return Catalogue(name=name or root.name, items=items_frame(item_rows), interactions=df,
                     rejected=rejects.frame(), source=str(root), rows_read=dict(rejects.read))


class _Bad(Exception):
    def __init__(self, column: str, reason: str):
        self.column, self.reason = column, reason
