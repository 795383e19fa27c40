"""Item embeddings: one .npy per view and mask, item ids as parquet, encoder facts as JSON."""

from __future__ import annotations

import html
import os

import numpy as np
import polars as pl
from zenml.enums import ArtifactType

from materializers.base import FolderMaterializer, read_json, scalar_metadata, write_json
from sidkit.features.embeddings import ItemEmbeddings


class ItemEmbeddingsMaterializer(FolderMaterializer):
    ASSOCIATED_TYPES = (ItemEmbeddings,)
    ASSOCIATED_ARTIFACT_TYPE = ArtifactType.DATA

    def write(self, data: ItemEmbeddings, folder: str) -> None:
        pl.DataFrame({"item_id": data.item_ids}).write_parquet(os.path.join(folder, "item_ids.parquet"))
        for view, arr in data.views.items():
            np.save(os.path.join(folder, f"{view}.npy"), arr.astype(np.float32), allow_pickle=False)
            np.save(os.path.join(folder, f"{view}_mask.npy"), data.masks[view].astype(bool), allow_pickle=False)
        for name, arr in data.item_stats.items():
            np.save(os.path.join(folder, f"stat_{name}.npy"), np.asarray(arr), allow_pickle=False)
        write_json(folder, "meta.json", {"views": list(data.views), "encoders": data.encoders,
                                         "item_stats": list(data.item_stats), "format_version": 1})

    def read(self, folder: str, data_type: type) -> ItemEmbeddings:
        meta = read_json(folder, "meta.json")
        ids = pl.read_parquet(os.path.join(folder, "item_ids.parquet"))["item_id"].to_list()
        views = {v: np.load(os.path.join(folder, f"{v}.npy"), allow_pickle=False) for v in meta["views"]}
        masks = {v: np.load(os.path.join(folder, f"{v}_mask.npy"), allow_pickle=False) for v in meta["views"]}
        stats = {k: np.load(os.path.join(folder, f"stat_{k}.npy"), allow_pickle=False) for k in meta.get("item_stats", [])}
        return ItemEmbeddings(ids, views, masks, meta["encoders"], stats)

    def extract_metadata(self, data: ItemEmbeddings) -> dict:
        return scalar_metadata(data.summary())

    def html(self, data: ItemEmbeddings) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(v)}</td><td>{a.shape[1]}</td><td>{int(data.masks[v].sum())}/{data.n_items}</td>"
            f"<td>{html.escape(str(data.encoders.get(v, {}).get('model', '')))} "
            f"{html.escape(str(data.encoders.get(v, {}).get('version', '')))}</td></tr>"
            for v, a in data.views.items())
        return ("<html><body style='font-family:sans-serif'><h2>Item embeddings</h2>"
                "<table border='1' cellpadding='4' style='border-collapse:collapse'><tr><th>view</th><th>dim</th>"
                f"<th>items with the view</th><th>encoder</th></tr>{rows}</table></body></html>")
