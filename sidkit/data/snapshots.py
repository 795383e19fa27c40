"""Time-sliced snapshots of a catalogue: what the system knew at the end of a month.

A snapshot ``until="1998-01"`` keeps the interactions with a timestamp before
1998-02-01 00:00 UTC and, by default (``items="seen"``), only the items that had at
least one of them: items enter the catalogue when they are first interacted with, so
successive snapshots bring new items, as a production catalogue does. ``items="all"``
keeps the whole items table (a catalogue that is fully known in advance).

Interactions without a timestamp cannot be sliced: a snapshot of such data is refused.
"""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from sidkit.data.schema import Catalogue
from sidkit.errors import ConfigError


def month_end(month: str) -> int:
    """Unix seconds of the first instant after ``month`` ("YYYY-MM"), UTC."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=timezone.utc)
    except ValueError as exc:
        raise ConfigError(f"snapshot month must look like 'YYYY-MM', got {month!r}") from exc
    nxt = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return int(nxt.timestamp())


def last_month(interactions: pl.DataFrame) -> str | None:
    """The month ("YYYY-MM", UTC) of the latest timestamped interaction: what a snapshot reaches; None without timestamps."""
    ts = interactions["timestamp"].drop_nulls() if "timestamp" in interactions.columns else None
    if ts is None or ts.is_empty():
        return None
    return datetime.fromtimestamp(int(ts.max()), timezone.utc).strftime("%Y-%m")


def months(cat: Catalogue) -> list[str]:
    """The months ("YYYY-MM", UTC) that have interactions, in order."""
    ts = cat.interactions["timestamp"].drop_nulls()
    if ts.is_empty():
        return []
    dates = pl.from_epoch(ts, time_unit="s").dt.strftime("%Y-%m")
    return sorted(dates.unique().to_list())


def take_snapshot(cat: Catalogue, until: str, items: str = "seen") -> Catalogue:
    if items not in ("seen", "all"):
        raise ConfigError(f"snapshot items must be 'seen' or 'all', got {items!r}")
    inter = cat.interactions
    if inter["timestamp"].null_count():
        raise ConfigError(f"{cat.name}: {inter['timestamp'].null_count()} interactions have no timestamp; "
                          "a time snapshot needs timestamps on every interaction")
    kept = inter.filter(pl.col("timestamp") < month_end(until))
    if kept.is_empty():
        raise ConfigError(f"{cat.name}: no interactions before the end of {until} "
                          f"(data covers {', '.join(months(cat)[:1] + months(cat)[-1:])})")
    kept = kept.with_columns(pl.col("position").rank("ordinal").over("user_id").cast(pl.Int64) - 1)
    item_table = cat.items if items == "all" else cat.items.filter(pl.col("item_id").is_in(kept["item_id"].unique()))
    excluded = {"items": cat.items.height - item_table.height, "interactions": inter.height - kept.height}
    return Catalogue(name=f"{cat.name}@{until}", items=item_table, interactions=kept,
                     source=f"{cat.source} until {until}", rejected=cat.rejected, rows_read=dict(cat.rows_read),
                     rows_excluded={t: cat.rows_excluded.get(t, 0) + n for t, n in excluded.items()})
