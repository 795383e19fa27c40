"""Trained downstream models (generator, ranker): config.json + model.safetensors (+ npy)."""

import html
import json

from zenml.enums import ArtifactType

from materializers.base import FolderMaterializer, scalar_metadata
from sidkit.evaluation.bundles import ModelBundle


class ModelBundleMaterializer(FolderMaterializer):
    ASSOCIATED_TYPES = (ModelBundle,)
    ASSOCIATED_ARTIFACT_TYPE = ArtifactType.MODEL

    def write(self, data: ModelBundle, folder: str) -> None:
        data.save(folder)

    def read(self, folder: str, data_type: type) -> ModelBundle:
        return ModelBundle.load(folder)

    def extract_metadata(self, data: ModelBundle) -> dict:
        return {"kind": data.kind, **scalar_metadata(data.info), "n_parameters": int(sum(v.numel() for v in data.state.values()))}

    def html(self, data: ModelBundle) -> str:
        return (f"<html><body style='font-family:sans-serif'><h2>{html.escape(data.kind)}</h2>"
                f"<pre>{html.escape(json.dumps({'config': data.config, 'info': data.info}, indent=2, default=str))}</pre>"
                "</body></html>")
