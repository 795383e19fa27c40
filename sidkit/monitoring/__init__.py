"""Monitoring of semantic IDs: drift reports (Evidently) and the analysts' reports folder."""
