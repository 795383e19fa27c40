"""Item features: text, image and behaviour embeddings, cached, with masks for missing views."""

from sidkit.features.embeddings import ItemEmbeddings, embed_catalogue

__all__ = ["ItemEmbeddings", "embed_catalogue"]
