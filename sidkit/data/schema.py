"""The canonical catalogue schema shared by every loader (polars).

Items
    ``item_id`` (str, unique), ``title``, ``description``, ``attributes`` (str or null:
    free text such as genres, brand, categories), ``image_path`` (str or null: a local
    image file; null means "no image", never a placeholder).
Interactions
    ``user_id`` (str), ``item_id`` (str), ``timestamp`` (int seconds or null when the
    source only has an order), ``position`` (0-based order within the user, ties in
    time broken by file order), ``rating`` (float or null).
Rejected rows (from parsing)
    ``table``, ``file``, ``row``, ``column``, ``check``, ``reason``, ``record``.

Every item and interaction row keeps its provenance in ``_file`` and ``_row`` (1-based
line number in the source file; the header, if any, is row 1) and, for interactions read
from a line that holds several (``sequences.txt``), ``_field`` (1-based position in that
line), so that validation can name and remove exactly the rows it rejects.

``Catalogue.rows_read`` counts the records each loader read per table, ``rows_excluded`` the
rows a snapshot left out on purpose: ``read = kept + rejected + excluded`` is checked at
validation (:func:`sidkit.data.validation.account_rows`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import polars as pl

ITEM_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.String,
    "title": pl.String,
    "description": pl.String,
    "attributes": pl.String,
    "image_path": pl.String,
    "_file": pl.String,
    "_row": pl.Int64,
}
INTERACTION_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String,
    "item_id": pl.String,
    "timestamp": pl.Int64,
    "position": pl.Int64,
    "rating": pl.Float64,
    "_file": pl.String,
    "_row": pl.Int64,
    "_field": pl.Int64,
}
PROVENANCE = ("_file", "_row", "_field")
REJECTED_SCHEMA: dict[str, pl.DataType] = {
    "table": pl.String,
    "file": pl.String,
    "row": pl.Int64,
    "field": pl.Int64,
    "column": pl.String,
    "check": pl.String,
    "reason": pl.String,
    "record": pl.String,
}
TEXT_FIELDS = ("title", "description", "attributes")


def items_frame(rows: list[dict] | dict[str, list]) -> pl.DataFrame:
    """Build an items frame with the canonical columns and dtypes (missing columns are null)."""
    return _frame(rows, ITEM_SCHEMA)


def interactions_frame(rows: list[dict] | dict[str, list]) -> pl.DataFrame:
    """Build an interactions frame; ``position`` is (re)derived by :func:`order_interactions`."""
    return _frame(rows, INTERACTION_SCHEMA)


def rejected_frame(rows: list[dict] | None = None) -> pl.DataFrame:
    return _frame(rows or [], REJECTED_SCHEMA)


def _frame(rows, schema) -> pl.DataFrame:
    df = pl.DataFrame(rows, infer_schema_length=None) if len(rows) else pl.DataFrame()
    cols = []
    for name, dtype in schema.items():
        if name in df.columns:
            cols.append(pl.col(name).cast(dtype, strict=True))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    if df.width == 0:
        return pl.DataFrame(schema=schema)
    return df.select(cols)


def order_interactions(df: pl.DataFrame) -> pl.DataFrame:
    """Sort each user's interactions by time (file order breaks ties) and number them."""
    df = df.sort(["user_id", "timestamp", "_file", "_row"], nulls_last=True, maintain_order=True)
    return df.with_columns(pl.int_range(pl.len()).over("user_id").cast(pl.Int64).alias("position"))


@dataclass
class Catalogue:
    """Items, interactions and the rows that could not be parsed, for one dataset."""

    name: str
    items: pl.DataFrame
    interactions: pl.DataFrame
    rejected: pl.DataFrame = field(default_factory=rejected_frame)
    source: str = ""
    rows_read: dict[str, int] = field(default_factory=dict)      # per table; empty: not counted (built in code)
    rows_excluded: dict[str, int] = field(default_factory=dict)  # per table, left out on purpose (snapshot)

    def __post_init__(self) -> None:
        # frames built by hand or stored before the _field / field columns existed
        if "_field" not in self.interactions.columns:
            self.interactions = self.interactions.with_columns(pl.lit(None, dtype=pl.Int64).alias("_field"))
        if "field" not in self.rejected.columns:
            self.rejected = self.rejected.with_columns(pl.lit(None, dtype=pl.Int64).alias("field"))
        self.rejected = self.rejected.select(list(REJECTED_SCHEMA))

    @property
    def n_users(self) -> int:
        return self.interactions["user_id"].n_unique()

    @property
    def n_items(self) -> int:
        return self.items.height

    @property
    def n_interactions(self) -> int:
        return self.interactions.height

    @property
    def n_images(self) -> int:
        return self.items["image_path"].is_not_null().sum()

    def content_hash(self) -> str:
        """A stable hash of the data (not of provenance columns): same data, same hash."""
        h = hashlib.sha256()
        for frame in (self.items, self.interactions):
            data = frame.drop([c for c in PROVENANCE if c in frame.columns])
            h.update(data.sort(data.columns, nulls_last=True).write_csv().encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        return {
            "name": self.name,
            "n_users": int(self.n_users),
            "n_items": int(self.n_items),
            "n_interactions": int(self.n_interactions),
            "n_images": int(self.n_images),
            "n_rejected_rows": int(self.rejected.height),
            "rows_read": dict(self.rows_read),
            "source": self.source,
        }


def item_texts(items: pl.DataFrame, fields: tuple[str, ...] | list[str] = TEXT_FIELDS) -> list[str]:
    """One text per item: the non-empty fields joined by '. ' in the given order."""
    exprs = [pl.col(f).fill_null("").str.strip_chars() for f in fields]
    joined = items.select(
        pl.concat_list(exprs).list.eval(pl.element().filter(pl.element() != "")).list.join(". ").alias("t")
    )["t"]
    return joined.to_list()
