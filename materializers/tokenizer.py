"""Tokenizers: config.json + model.safetensors (no pickled modules)."""

from __future__ import annotations

import html
import json

from zenml.enums import ArtifactType

from materializers.base import FolderMaterializer, scalar_metadata
from sidkit.tokenizers.base import Tokenizer, load_tokenizer


class TokenizerMaterializer(FolderMaterializer):
    ASSOCIATED_TYPES = (Tokenizer,)
    ASSOCIATED_ARTIFACT_TYPE = ArtifactType.MODEL

    def write(self, data: Tokenizer, folder: str) -> None:
        data.save(folder)

    def read(self, folder: str, data_type: type) -> Tokenizer:
        return load_tokenizer(folder)

    def extract_metadata(self, data: Tokenizer) -> dict:
        n_params = sum(p.numel() for p in data.parameters()) + sum(b.numel() for b in data.buffers())
        return {**scalar_metadata(data.describe()), "n_parameters": int(n_params), "format": "config.json+safetensors"}

    def html(self, data: Tokenizer) -> str:
        cfg = json.dumps(data.config.model_dump(mode="json"), indent=2)
        return (f"<html><body style='font-family:sans-serif'><h2>Tokenizer {html.escape(data.method)}</h2>"
                f"<p>input dim {data.input_dim}, codebooks {data.codebook_sizes}</p><pre>{html.escape(cfg)}</pre>"
                "</body></html>")
