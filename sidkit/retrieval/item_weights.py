"""Per-item weights of SID positions inside the generator (``sid_weights: router``).

ADA-SID's router gives each item a weight per SID position (the SID table's ``weight_<p>`` columns);
its spec scales the behavioural SID embeddings by them in the downstream model
(../shared/docs/methods.md §3.2). The item-level generator reads history items as token rows, so it
finds each item's weights from its SID tokens: an exact lookup, level by level (a prefix's dense id
times the vocabulary size plus the next token, searched among the catalogue's prefixes), with no hash
that two items could share. An item the catalogue does not hold (padding) gets weight 1.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class ItemWeights(nn.Module):
    """Maps token rows (..., L) of catalogue items to their per-position weights (..., L)."""

    def __init__(self, sid_tokens: np.ndarray, weights: np.ndarray, vocab_size: int):
        super().__init__()
        tokens = torch.as_tensor(np.asarray(sid_tokens, dtype=np.int64))
        weights = torch.as_tensor(np.asarray(weights, dtype=np.float32))
        if tokens.shape != weights.shape:
            raise ValueError(f"SID tokens {tuple(tokens.shape)} and weights {tuple(weights.shape)} differ in shape")
        self.radix = int(vocab_size)
        prefix = torch.zeros(len(tokens), dtype=torch.long)
        self.levels = tokens.shape[1]
        for p in range(self.levels):
            keys, prefix = torch.unique(prefix * self.radix + tokens[:, p], sorted=True, return_inverse=True)
            self.register_buffer(f"keys_{p}", keys, persistent=False)
        # one row per distinct SID (the last level's dense id); a SID two items share keeps the first's weights
        n_sids = int(prefix.max()) + 1 if len(prefix) else 0
        first = torch.full((n_sids,), len(tokens), dtype=torch.long).scatter_reduce(
            0, prefix, torch.arange(len(tokens)), reduce="amin")
        table = torch.cat([weights[first], torch.ones(1, self.levels)])   # last row: not a catalogue SID -> 1
        self.register_buffer("table", table, persistent=False)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """items (..., L) token ids -> weights (..., L); rows that are not a catalogue SID get ones."""
        prefix = torch.zeros(items.shape[:-1], dtype=torch.long)
        known = torch.ones(items.shape[:-1], dtype=torch.bool)
        for p in range(self.levels):
            keys = getattr(self, f"keys_{p}")
            combined = prefix * self.radix + items[..., p]
            pos = torch.searchsorted(keys, combined).clamp_max(len(keys) - 1)
            known &= keys[pos] == combined
            prefix = pos
        return self.table[torch.where(known, prefix, len(self.table) - 1)]
