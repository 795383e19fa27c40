"""Feature steps: embed items (text, image, behaviour) and validate the embeddings."""


from typing import Annotated, Tuple

import polars as pl
from zenml import step

from sidkit.data.schema import Catalogue
from sidkit.data.splits import Splits
from sidkit.data.validation import CheckResult, ValidationReport
from sidkit.features.checks import check_alignment, validate_embeddings
from sidkit.features import ItemEmbeddings, embed_catalogue
from steps.artifacts import Artifacts


@step
def embed_items(catalogue: Catalogue, splits: Splits, features: dict,
                precomputed_fingerprint: str = "") -> Annotated[ItemEmbeddings, Artifacts.ITEM_EMBEDDINGS]:
    """Text (MiniLM), image (EfficientNet-Lite0) and behaviour (SASRec on the training split) embeddings,
    plus any precomputed views. ``precomputed_fingerprint`` (of those files' bytes) is only a cache key."""
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
    unreadable = embeddings.encoders.get("image", {}).get("unreadable") or {}
    if unreadable:  # counted, not fatal: these items have no image view, like items without a file
        n = embeddings.encoders["image"].get("n_unreadable", len(unreadable))
        report.warnings.append(f"{n} image file(s) could not be read; those items have no image view")
        report.checks.append(CheckResult("image", "image_readable", "image_path", True, n,
                                         [f"item '{i}': {why}" for i, why in list(unreadable.items())[:20]],
                                         "unreadable image files count as missing images"))
    return report, quarantine
