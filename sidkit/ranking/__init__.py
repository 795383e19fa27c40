"""Discriminative ranking with SID features: a DIN-style CTR model, AUC and GAUC."""
