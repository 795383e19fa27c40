"""Semantic ID tables and collision policies."""
