"""Residual quantisation: one container, pluggable per-level quantisers."""

from sidkit.quantise.levels import CodebookLevel, GradientMode, KMeansLevel
from sidkit.quantise.residual import ResidualQuantiser, RQOutput

__all__ = ["CodebookLevel", "GradientMode", "KMeansLevel", "ResidualQuantiser", "RQOutput"]
