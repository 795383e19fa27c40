"""Catalogue and Splits: parquet frames + meta.json."""

from __future__ import annotations

import html
import os

import polars as pl
from zenml.enums import ArtifactType

from materializers.base import FolderMaterializer, read_json, scalar_metadata, write_json
from sidkit.data.schema import PROVENANCE, Catalogue
from sidkit.data.splits import Splits


def _table_html(df: pl.DataFrame, limit: int = 20) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))[:120]}</td>" for v in r) + "</tr>"
                   for r in df.head(limit).iter_rows())
    return f"<table border='1' cellpadding='3' style='border-collapse:collapse'><tr>{head}</tr>{rows}</table>"


class CatalogueMaterializer(FolderMaterializer):
    ASSOCIATED_TYPES = (Catalogue,)
    ASSOCIATED_ARTIFACT_TYPE = ArtifactType.DATA

    def write(self, data: Catalogue, folder: str) -> None:
        data.items.write_parquet(os.path.join(folder, "items.parquet"))
        data.interactions.write_parquet(os.path.join(folder, "interactions.parquet"))
        data.rejected.write_parquet(os.path.join(folder, "rejected.parquet"))
        write_json(folder, "meta.json", {"name": data.name, "source": data.source, "format_version": 2,
                                         "rows_read": data.rows_read, "rows_excluded": data.rows_excluded})

    def read(self, folder: str, data_type: type) -> Catalogue:
        meta = read_json(folder, "meta.json")
        return Catalogue(name=meta["name"], source=meta["source"],
                         items=pl.read_parquet(os.path.join(folder, "items.parquet")),
                         interactions=pl.read_parquet(os.path.join(folder, "interactions.parquet")),
                         rejected=pl.read_parquet(os.path.join(folder, "rejected.parquet")),
                         rows_read=meta.get("rows_read", {}), rows_excluded=meta.get("rows_excluded", {}))

    def extract_metadata(self, data: Catalogue) -> dict:
        return {**scalar_metadata(data.summary()), "content_hash": data.content_hash()}

    def html(self, data: Catalogue) -> str:
        s = data.summary()
        facts = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in s.items())
        return (f"<html><body style='font-family:sans-serif'><h2>Catalogue {html.escape(data.name)}</h2>"
                f"<ul>{facts}</ul><h3>Items (first 20)</h3>{_table_html(data.items.drop(PROVENANCE, strict=False))}"
                f"<h3>Interactions (first 20)</h3>{_table_html(data.interactions.drop(PROVENANCE, strict=False))}</body></html>")


class SplitsMaterializer(FolderMaterializer):
    ASSOCIATED_TYPES = (Splits,)
    ASSOCIATED_ARTIFACT_TYPE = ArtifactType.DATA

    def write(self, data: Splits, folder: str) -> None:
        data.interactions.write_parquet(os.path.join(folder, "interactions.parquet"))
        write_json(folder, "meta.json", {"max_history": data.max_history, "scheme": "leave-one-out"})

    def read(self, folder: str, data_type: type) -> Splits:
        meta = read_json(folder, "meta.json")
        return Splits(pl.read_parquet(os.path.join(folder, "interactions.parquet")), meta["max_history"])

    def extract_metadata(self, data: Splits) -> dict:
        return {**data.summary(), "scheme": "leave-one-out"}
