"""Decoder-only generator over the flat token sequence ``BOS, sid(item_1), sid(item_2), ...``.

Every token is predicted from all earlier tokens; beam search reuses the cached history keys.
Kept as the ``history: tokens`` alternative to the item-level model (sidkit.retrieval.item_model).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sidkit.retrieval.config import PAD, GeneratorConfig
from sidkit.retrieval.dropout import FastDropout
from sidkit.retrieval.layers import Block, causal_mask, small_init


@dataclass
class DecodeState:
    """Incremental decoding state: the users' history keys/values (shared by their beams), each
    beam's own generated keys/values, and each row's next position. Rows are grouped by user
    (``beams`` consecutive rows per user)."""

    hist: list[tuple[torch.Tensor, torch.Tensor]]
    hist_real: torch.Tensor                   # (users, T) bool
    own: list[tuple[torch.Tensor, torch.Tensor]]
    next_pos: torch.Tensor                    # (rows,)
    beams: int = 1

    def select(self, rows: torch.Tensor) -> "DecodeState":
        """Keep ``rows`` (grouped by user, the same number per user) for the next step."""
        users = self.hist_real.shape[0]
        return DecodeState(self.hist, self.hist_real, [(k[rows], v[rows]) for k, v in self.own],
                           self.next_pos[rows], len(rows) // users)


class TokenHistoryGenerator(nn.Module):
    """Decoder-only transformer over the flat SID-token sequence (weights tied between input and output)."""

    def __init__(self, vocab_size: int, max_len: int, cfg: GeneratorConfig, sid_length: int = 0):
        super().__init__()
        self.cfg = cfg
        self.sid_length = sid_length
        self.tok = nn.Embedding(vocab_size, cfg.d_model, padding_idx=PAD)
        self.pos = nn.Embedding(max_len, cfg.d_model)
        # position p > 0 (BOS is 0) holds a token of SID level (p - 1) % sid_length
        self.level = nn.Embedding(sid_length + 1, cfg.d_model) if cfg.level_embedding and sid_length else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.drop = FastDropout(cfg.dropout)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.out = nn.Linear(cfg.d_model, vocab_size, bias=False)
        self.out.weight = self.tok.weight  # tied
        small_init(self)

    def _embed(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        h = self.tok(tokens) + self.pos(pos.clamp_max(self.pos.num_embeddings - 1))
        if self.level is not None:
            h = h + self.level(torch.where(pos > 0, 1 + (pos - 1) % self.sid_length, 0))
        return self.drop(h)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (batch, T), left-padded with PAD. Returns the logits predicting tokens[:, 1:]."""
        return self.start(tokens[:, :-1], keep_all=True)[0]

    def start(self, tokens: torch.Tensor, keep_all: bool = False) -> tuple[torch.Tensor, DecodeState]:
        """Run a left-padded batch; returns logits (of the last position unless keep_all) and the decode state."""
        B, T = tokens.shape
        real = tokens != PAD
        pos = (real.long().cumsum(1) - 1).clamp_min(0)
        allowed = causal_mask(real)
        h = self._embed(tokens, pos)
        hist = []
        for block in self.blocks:
            h, kv = block(h, allowed)
            hist.append(kv)
        logits = self.out(self.norm(h))
        dh = self.cfg.d_model // self.cfg.n_heads
        empty = torch.zeros(B, self.cfg.n_heads, 0, dh, dtype=hist[0][0].dtype)
        state = DecodeState(hist, real, [(empty, empty)] * len(self.blocks), real.long().sum(1))
        return (logits if keep_all else logits[:, -1]), state

    def extend(self, state: DecodeState, tokens: torch.Tensor) -> tuple[torch.Tensor, DecodeState]:
        """Append one token per row (tokens: (rows,)); returns the last logits and the new state."""
        h = self._embed(tokens[:, None], state.next_pos[:, None])
        own = []
        for block, hist, mine in zip(self.blocks, state.hist, state.own):
            h, kv = block.step(h, hist, state.hist_real, mine, state.beams)
            own.append(kv)
        logits = self.out(self.norm(h))[:, -1]
        return logits, DecodeState(state.hist, state.hist_real, own, state.next_pos + 1, state.beams)
