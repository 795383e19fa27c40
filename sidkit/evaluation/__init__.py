"""Evaluation: SID quality (collisions, codebook health) and, later, downstream metrics."""
