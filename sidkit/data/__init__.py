"""Data in: the canonical schema, loaders for public formats, a synthetic catalogue, splits."""

from sidkit.data.schema import Catalogue

__all__ = ["Catalogue"]
