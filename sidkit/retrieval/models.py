"""Which generator a config builds, and how item histories become its token rows.
"""

from __future__ import annotations

import numpy as np
import torch

from sidkit.errors import ConfigError
from sidkit.retrieval.config import BOS, GeneratorConfig, SIDVocabulary
from sidkit.retrieval.item_model import ItemHistoryGenerator
from sidkit.retrieval.item_weights import ItemWeights
from sidkit.retrieval.token_model import TokenHistoryGenerator


SIDGenerator = TokenHistoryGenerator | ItemHistoryGenerator


def build_generator(vocab: SIDVocabulary, max_len: int, cfg: GeneratorConfig,
                    views: list[list[int]] | None = None, sids: np.ndarray | None = None,
                    weights: np.ndarray | None = None) -> SIDGenerator:
    """The generator ``cfg.history`` names; max_len: ``max_tokens(cfg, sid_length)``.
    ``views`` (SID positions per view) needs the item-level model; so does ``sid_weights: router``, which
    reads ``weights`` (items x SID positions) of the catalogue's ``sids``."""
    if cfg.sid_weights == "router":
        if weights is None or sids is None:
            raise ConfigError("sid_weights: router needs per-item SID weights (an ADA-SID tokenizer with a router: "
                              "the SID table's weight_<p> columns); this SID table has none")
        if cfg.history != "items":
            raise ConfigError("sid_weights: router needs history: items")
    if cfg.history == "items":
        item_weights = (ItemWeights(vocab.tokens(sids), weights, vocab.size) if cfg.sid_weights == "router"
                        else None)
        return ItemHistoryGenerator(vocab, max_len, cfg, views, item_weights)
    if views and len(views) > 1:
        raise ValueError("multi-view generation (MACRec) needs history: items")
    return TokenHistoryGenerator(vocab.size, max_len, cfg, sid_length=vocab.length)


def max_tokens(cfg: GeneratorConfig, sid_length: int) -> int:
    """Longest token row a generator sees: BOS + (max_history + 1) SIDs (a training window)."""
    return 1 + (cfg.max_history + 1) * sid_length


def sequences_to_tokens(item_rows: list[list[int]], sid_tokens: np.ndarray, max_items: int) -> list[list[int]]:
    """Token lists ``BOS + sid tokens of the last max_items items`` per sequence."""
    return [[BOS] + sid_tokens[rows[-max_items:]].reshape(-1).tolist() for rows in item_rows]


def pad_left(seqs: list[list[int]]) -> torch.Tensor:
    """Token lists as one left-padded (rows, longest) tensor, on the current default device (sidkit.devices)."""
    width = max(len(s) for s in seqs)
    out = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, width - len(s):] = s
    return torch.from_numpy(out).to(torch.get_default_device())
