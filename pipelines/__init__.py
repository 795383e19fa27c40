"""ZenML pipelines (one per module)."""
