"""``sequences.txt`` (``user item1 item2 ...``, oldest first) + ``items.csv`` (``asin,title``)."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from sidkit.data.loaders.reading import Rejects, image_for, lines, require
from sidkit.data.schema import Catalogue, interactions_frame, items_frame
from sidkit.errors import DataFormatError


def _read_sequences(path: Path, rejects: Rejects) -> list[dict]:
    """One interaction per (line, item); ``_field`` is the item's 1-based place in its line."""
    inter: list[dict] = []
    for row, line in lines(path, rejects, "interactions"):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            rejects.count("interactions")
            rejects.add("interactions", path, row, "items", "a user line needs at least one item", line)
            continue
        rejects.count("interactions", len(parts) - 1)
        inter.extend({"user_id": parts[0], "item_id": item, "_file": str(path), "_row": row, "_field": k}
                     for k, item in enumerate(parts[1:], start=1))
    return inter


def _read_items(path: Path, rejects: Rejects, image_dir: Path | None) -> list[dict]:
    """Each physical line is one record, parsed on its own: an unterminated quote rejects its row only."""
    items: list[dict] = []
    for row, line in lines(path, rejects, "items"):
        if row == 1:
            header = next(csv.reader([line]), [])
            if [h.strip().lower() for h in header] != ["asin", "title"]:
                raise DataFormatError(str(path), 1, None, f"expected the header 'asin,title', got {line!r}")
            continue
        if not line.strip():
            continue
        rejects.count("items")
        try:
            record = next(csv.reader([line], strict=True))
        except csv.Error as exc:
            rejects.add("items", path, row, "title", f"CSV error: {exc} (an unterminated quote, or a line break inside "
                                                     "a quoted title, which items.csv does not support)", line)
            continue
        if len(record) != 2:
            rejects.add("items", path, row, "title" if len(record) < 2 else None,
                        f"expected 2 fields (asin,title), got {len(record)}", line)
            continue
        asin = record[0].strip()
        if not asin:
            rejects.add("items", path, row, "asin", "empty item id", line)
            continue
        items.append({"item_id": asin, "title": record[1].strip() or None, "image_path": image_for(image_dir, asin),
                      "_file": str(path), "_row": row})
    return items


def load_amazon_sequences(root: str | Path, *, sequences: str = "sequences.txt", items_file: str = "items.csv",
                          image_dir: str | Path | None = None, name: str | None = None) -> Catalogue:
    """No timestamps: the position in the line is the order."""
    root = Path(root)
    rejects = Rejects()
    inter = _read_sequences(require(root / sequences, "sequence file"), rejects)
    items = _read_items(require(root / items_file, "items file"), rejects, Path(image_dir) if image_dir else None)
    df = interactions_frame(inter).sort(["_row", "_field"], maintain_order=True)
    df = df.with_columns(pl.int_range(pl.len()).over("user_id").cast(pl.Int64).alias("position"))
    return Catalogue(name=name or root.name, items=items_frame(items), interactions=df, rejected=rejects.frame(),
                     source=str(root), rows_read=dict(rejects.read))
