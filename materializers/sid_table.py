"""SID tables: sids.parquet + meta.json; the dashboard view is the per-level code-usage histogram."""

from __future__ import annotations

import os

import polars as pl
from zenml.enums import ArtifactType

from materializers.base import FolderMaterializer, read_json, write_json
from sidkit.sids.table import SIDTable


class SIDTableMaterializer(FolderMaterializer):
    ASSOCIATED_TYPES = (SIDTable,)
    ASSOCIATED_ARTIFACT_TYPE = ArtifactType.DATA

    def write(self, data: SIDTable, folder: str) -> None:
        data.frame.write_parquet(os.path.join(folder, "sids.parquet"))
        write_json(folder, "meta.json", {"method": data.method, "codebook_sizes": data.codebook_sizes,
                                         "collision_policy": data.collision_policy, "info": data.info})

    def read(self, folder: str, data_type: type) -> SIDTable:
        meta = read_json(folder, "meta.json")
        return SIDTable(pl.read_parquet(os.path.join(folder, "sids.parquet")), meta["method"],
                        meta["codebook_sizes"], meta["collision_policy"], meta.get("info", {}))

    def extract_metadata(self, data: SIDTable) -> dict:
        return {"n_items": data.frame.height, "method": data.method, "levels": len(data.codebook_sizes),
                "sid_length": len(data.sid_columns), "codebook_sizes": data.codebook_sizes,
                "collision_policy": data.collision_policy, "items_with_raw_collision": int(data.frame["collided"].sum())}

    def html(self, data: SIDTable) -> str:
        return data.usage_html()
