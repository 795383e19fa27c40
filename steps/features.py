"""Feature steps: embed items (text, image, behaviour) and validate the embeddings."""


from typing import Annotated, Tuple

import polars as pl
from zenml import step

from sidkit.data.schema import Catalogue
from sidkit.data.splits import Splits
from sidkit.data.validation import ValidationReport, check_alignment, validate_embeddings
from sidkit.features import ItemEmbeddings, embed_catalogue
from steps.artifacts import Artifacts


@step
def embed_items(catalogue: Catalogue, splits: Splits, features: dict) -> Annotated[ItemEmbeddings, Artifacts.ITEM_EMBEDDINGS]:
    """Text (MiniLM), image (EfficientNet-Lite0) and behaviour (SASRec on the training split) embeddings."""
    return embed_catalogue(catalogue, splits, features)


@step
def validate_item_embeddings(catalogue: Catalogue, embeddings: ItemEmbeddings) -> Tuple[
    Annotated[ValidationReport, Artifacts.EMBEDDING_VALIDATION_REPORT],
    Annotated[pl.DataFrame, Artifacts.EMBEDDING_QUARANTINE],
]:
    """Shape, finite values and alignment of every view with the catalogue's item ids."""
    dims = {v: int(e.get("dim")) for v, e in embeddings.encoders.items() if e.get("dim")}
    report, quarantine = validate_embeddings(embeddings.item_ids, embeddings.views, embeddings.masks, dims)
    alignment = check_alignment(catalogue.items["item_id"].to_list(), embeddings.item_ids)
    report.checks.append(alignment)
    report.passed = report.passed and alignment.success
    return report, quarantine
