"""ZenML materializers that store sidkit objects in plain formats (parquet, JSON, npy, safetensors).

Importing this package registers them with ZenML.
"""

from materializers.bundles import ModelBundleMaterializer
from materializers.catalogue import CatalogueMaterializer, SplitsMaterializer
from materializers.embeddings import ItemEmbeddingsMaterializer
from materializers.reports import (
    ABComparisonMaterializer,
    DriftReportMaterializer,
    SIDQualityMaterializer,
    ValidationReportMaterializer,
)
from materializers.sid_table import SIDTableMaterializer
from materializers.tokenizer import TokenizerMaterializer

__all__ = [
    "ABComparisonMaterializer", "CatalogueMaterializer", "DriftReportMaterializer", "ModelBundleMaterializer", "ItemEmbeddingsMaterializer", "SIDQualityMaterializer", "SIDTableMaterializer",
    "SplitsMaterializer", "TokenizerMaterializer", "ValidationReportMaterializer",
]
