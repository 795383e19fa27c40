"""Generative retrieval over SID tokens, trained from scratch, with trie-constrained beam search.

Two architectures (``GeneratorConfig.history``), both reading a user's history only as SID
tokens (no item IDs) and generating the next item's SID token by token under a trie of real SIDs:

* ``items`` (default): an encoder-decoder in TIGER's spirit with an item-level encoder. Each history
  item enters the causal encoder as the sum of its SID tokens' embeddings (one position per item,
  not one per token); a small causal decoder generates the next item's SID tokens from the
  encoder state after the history. Every item of a training sequence is a target in one pass
  (the encoder is causal over items), so a 20-item window costs 21 encoder positions instead of
  ~85. Why this is the default: the token-level model below must first learn to compose 4 tokens
  into an item before it can learn item-to-item transitions; on Amazon Beauty it stayed near
  popularity within the epochs this CPU affords (R@10 0.023, BENCHMARKS.md), while the item-level
  encoder learns transitions at the pace of a sequential recommender. TIGER's own encoder is
  token-level; ours differs there (documented choice). With ``cross_attention`` the decoder also
  attends to every encoder output of the history, as TIGER's decoder does, not only to the state
  after the last item.
* ``tokens``: decoder-only over the flat token sequence ``BOS, sid(item_1), sid(item_2), ...``;
  every token is predicted from all earlier tokens; beam search reuses cached history keys.

Tokens: 0 = padding, 1 = BOS; SID position p's code c is token ``2 + offset[p] + c``. A batch of
histories is ``BOS, sid(item_1), ...`` per row, left-padded; positions are counted from BOS (left
padding does not shift them). ``forward(tokens)`` returns the logits that predict ``tokens[:, 1:]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sidkit import distributed
from sidkit.precision import Precision, autocast
from sidkit.retrieval.dropout import FastDropout
from sidkit.retrieval.feedforward import FeedForward
from sidkit.retrieval.trie import SIDTrie
from sidkit.utils import log, progress, torch_generator

PAD, BOS, N_SPECIAL = 0, 1, 2
IGNORE = -100   # a target that is no target, in per-position (compact) code indexes


class GeneratorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    d_model: int = Field(128, ge=1)
    n_layers: int = Field(4, ge=1)
    n_heads: int = Field(4, ge=1)
    d_ff: int = Field(512, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    max_history: int = Field(20, ge=1)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_steps: int = 200       # linear warm-up, then cosine decay to 10% of lr over `epochs`
    schedule: Literal["cosine", "constant"] = "cosine"
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0)  # > 0: validate, select and return an exponential moving
                                                   # average of the weights (per step; ramped up as
                                                   # min(decay, (1 + step) / (10 + step))); 0 = the live weights
    beam_size: int = Field(20, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    patience: int = 5             # validations without improvement before stopping
    valid_every: int = 1          # validate (beam search on validation users) every N epochs
    valid_users: int = 0          # validate on a fixed random sample of this many users (0 = all)
    level_embedding: bool = True  # add an embedding of the SID position (level) each token is at
    precision: Precision = "auto"  # auto: bf16 autocast where the CPU has native bf16, else fp32 (sidkit.precision)
    history: Literal["items", "tokens"] = "items"   # item-level encoder + SID decoder, or decoder-only over tokens
    decoder_layers: int = 1       # ``items``: layers of the causal decoder over the next item's SID tokens
    decoder_d_ff: int | None = None  # ``items``: the decoder's feed-forward width (None: d_ff). The decoder
                                     # runs on L positions per target item, the encoder on one, so a wide
                                     # encoder with a narrow decoder costs far less than both wide
    cross_attention: bool = True   # ``items``: each decoder layer also attends to the encoder outputs of the
                                   # whole history (TIGER's encoder-decoder); False: the decoder sees only
                                   # the encoder state after the last item
    tie_item_embeddings: bool = False  # ``items``: True: history items are summed from the decoder's
                                       # (output-tied) token table; False: from a separate table
    prefix_ngram_buckets: int = 0     # ``items``: > 0 adds to each history item the embeddings of its SID
                                      # prefixes (c1), (c1,c2), ... hashed into this many rows per prefix length
                                      # (prefix n-grams, Singh et al. 2023); 0 = tokens only
    # MACRec's generator side (item-level model; used when the SID has views, e.g. MACRec's two branches)
    views: Literal["auto", "joint"] = "auto"   # auto: a MACRec SID is read as its branches' views; joint: one view
    view_tasks: list[Literal["next", "cross_next", "translate"]] = ["next", "cross_next", "translate"]
    implicit_alignment: float = 0.01   # weight of the encoder's cross-view InfoNCE (0 = off)
    ensemble_bonus: float | None = 1.0  # dual-view ensemble: items both views' beams find get mean + bonus;
                                        # None: rank by view 0's beams only
    exclude_history: bool = False  # rank only items the user has not interacted with (the history's items
                                   # are masked in the beam search itself, so they take no beam slot). For
                                   # data without repeat consumption (5-core Amazon, MovieLens ratings);
                                   # keep False where users re-buy
    seed: int = 0


@dataclass
class SIDVocabulary:
    """Maps SIDs (per-position codes) to token ids and back."""

    sizes: list[int]

    @classmethod
    def from_sids(cls, sids: np.ndarray) -> "SIDVocabulary":
        return cls([int(sids[:, p].max()) + 1 for p in range(sids.shape[1])])

    @property
    def length(self) -> int:
        return len(self.sizes)

    @property
    def offsets(self) -> list[int]:
        return [N_SPECIAL + sum(self.sizes[:p]) for p in range(self.length)]

    @property
    def size(self) -> int:
        return N_SPECIAL + sum(self.sizes)

    def tokens(self, sids: np.ndarray) -> np.ndarray:
        return np.asarray(sids, dtype=np.int64) + np.asarray(self.offsets, dtype=np.int64)[None, :]


class _Block(nn.Module):
    """Pre-norm causal self-attention block; ``step`` decodes one token per beam against cached keys."""

    def __init__(self, cfg: GeneratorConfig, d_ff: int | None = None):
        super().__init__()
        d, d_ff = cfg.d_model, d_ff or cfg.d_ff
        self.n_heads, self.p = cfg.n_heads, cfg.dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ff = FeedForward(d, d_ff)
        self.drop = FastDropout(cfg.dropout)

    def _qkv(self, x: torch.Tensor):
        B, T, d = x.shape
        return self.qkv(self.ln1(x)).reshape(B, T, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)

    def _finish(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, T, d)))
        return x + self.drop(self.ff(self.ln2(x)))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor):
        q, k, v = self._qkv(x)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=self.p if self.training else 0.0)
        return self._finish(x, a), (k, v)

    def step(self, x: torch.Tensor, hist: tuple[torch.Tensor, torch.Tensor], hist_real: torch.Tensor,
             own: tuple[torch.Tensor, torch.Tensor], beams: int):
        """x (users * beams, 1, d). The history keys (users, h, T, dh) are shared by a user's beams
        (never copied per beam); ``own`` holds each beam's keys of the tokens it generated."""
        q, k, v = self._qkv(x)                                   # (rows, h, 1, dh)
        own_k, own_v = torch.cat([own[0], k], 2), torch.cat([own[1], v], 2)   # (rows, h, s, dh)
        U, H, T, dh = hist[0].shape
        qu = q.reshape(U, beams, H, dh).transpose(1, 2)          # (U, h, beams, dh)
        s_hist = qu @ hist[0].transpose(2, 3)                    # (U, h, beams, T)
        s_hist = s_hist.masked_fill(~hist_real[:, None, None, :], float("-inf"))
        s_own = (q @ own_k.transpose(2, 3)).reshape(U, beams, H, -1).transpose(1, 2)  # (U, h, beams, s)
        w = torch.softmax(torch.cat([s_hist, s_own], -1).float() / math.sqrt(dh), -1).to(q.dtype)
        a = w[..., :T] @ hist[1]                                  # (U, h, beams, dh)
        a = a + (w[..., T:].transpose(1, 2).reshape(U * beams, H, 1, -1) @ own_v).reshape(U, beams, H, dh).transpose(1, 2)
        a = a.transpose(1, 2).reshape(U * beams, H, 1, dh)       # (rows, h, 1, dh)
        return self._finish(x, a), (own_k, own_v)

    def step_own(self, x: torch.Tensor, own: tuple[torch.Tensor, torch.Tensor] | None):
        """x (rows, 1, d): one new position attending to its row's cached keys/values ``own``
        (rows, h, s, dh; None at the first position) and to itself; returns the output and the cache."""
        q, k, v = self._qkv(x)
        if own is not None:
            k, v = torch.cat([own[0], k], 2), torch.cat([own[1], v], 2)
        return self._finish(x, F.scaled_dot_product_attention(q, k, v)), (k, v)


class _CrossAttention(nn.Module):
    """Pre-norm attention from decoder positions to encoder outputs (``ItemHistoryGenerator`` with
    ``cross_attention``). Memory keys/values are projected once per history and shared by all of
    its target slots: queries (G, n, L, d) -- n target slots of L decoder positions -- attend to
    memory (G, M, d) under ``allowed`` (G, n, M), slot i's causal view of the history."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.ln = nn.LayerNorm(d)
        self.q, self.kv, self.proj = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)
        self.drop, self.attention_drop = FastDropout(cfg.dropout), FastDropout(cfg.dropout)

    def project(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """memory (G, M, d) -> keys, values (G, M, h, dh)."""
        G, M, d = memory.shape
        return self.kv(memory).reshape(G, M, 2, self.n_heads, d // self.n_heads).unbind(2)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        G, n, L, d = x.shape
        H = self.n_heads
        q = self.q(self.ln(x)).reshape(G, n, L, H, d // H)
        s = torch.einsum("gnlhd,gmhd->gnhlm", q, k) / math.sqrt(d // H)
        s = s.masked_fill(~allowed[:, :, None, None, :], float("-inf"))
        w = self.attention_drop(torch.softmax(s.float(), -1).to(q.dtype))
        a = torch.einsum("gnhlm,gmhd->gnlhd", w, v).reshape(G, n, L, d)
        return x + self.drop(self.proj(a))


def _small_init(model: nn.Module) -> None:
    """GPT-style N(0, 0.02) init: with tied N(0, 1) embeddings the initial logits have std ~sqrt(d_model)."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)


def _causal_mask(real: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) attention mask: causal, and no attention to padding -- except a padding
    position to itself, so that no row is fully masked (a fully masked row gives NaN, which
    0-weight attention still spreads into real positions)."""
    T = real.shape[1]
    eye = torch.eye(T, dtype=torch.bool, device=real.device)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=real.device))
    return (causal[None] & (real[:, None, :] | eye))[:, None]


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
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
        self.drop = FastDropout(cfg.dropout)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.out = nn.Linear(cfg.d_model, vocab_size, bias=False)
        self.out.weight = self.tok.weight  # tied
        _small_init(self)

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
        allowed = _causal_mask(real)
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


@dataclass
class CrossMemory:
    """Encoder outputs as the decoder's cross-attention reads them: keys and values per decoder layer
    (G, M, h, dh), projected once per encoded history, and the mask (G, n, M) of what target slot i
    may see."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    allowed: torch.Tensor

    def rows(self, index: torch.Tensor) -> "CrossMemory":
        return CrossMemory([(k[index], v[index]) for k, v in self.kv], self.allowed[index])


@dataclass
class ItemDecodeState:
    """Beam state of the item-level model: each row's encoder context, the SID tokens it generated,
    and the task (source view, target view) it decodes."""

    context: torch.Tensor       # (rows, d)
    prefix: torch.Tensor        # (rows, generated tokens)
    task: tuple[int, int, str] = (0, 0, "next")
    # cross_attention: each user's projected memory (per decoder layer: keys, values (users, M, h, dh))
    # and mask (users, 1, M), computed once per user; ``owner`` maps each row (beam) to its user
    memory: CrossMemory | None = None
    owner: torch.Tensor | None = None
    # the decoder's self-attention keys/values of the positions decoded so far, per layer (rows, h, s, dh)
    cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def select(self, rows: torch.Tensor) -> "ItemDecodeState":
        owner = None if self.owner is None else self.owner[rows]
        cache = None if self.cache is None else [(k[rows], v[rows]) for k, v in self.cache]
        return ItemDecodeState(self.context[rows], self.prefix[rows], self.task, self.memory, owner, cache)


TASK_KINDS = ("next", "translate")


class ItemHistoryGenerator(nn.Module):
    """Item-level causal encoder over the history + causal SID decoder (embeddings tied with the output).

    An item's input vector is the sum of its SID tokens' embeddings (the same table the decoder
    reads and writes). The encoder output after items 1..t is the context of item t+1; the decoder
    sees ``[context + task, tok(c_1), ..., tok(c_{L-1})]`` (+ an embedding of each SID position)
    and predicts ``c_1 .. c_L``.

    Views (MACRec's generator side): ``views`` lists the SID positions of each view (e.g. the text
    branch's and the image branch's codes of a MACRec SID). A task reads the history in one view
    and generates the target in another: ``next`` (next item; same view = the per-aspect task,
    different views = sequence-level cross-view prediction) or ``translate`` (the same item, the
    explicit item-level translation). With one view of all positions this is plain TIGER-style
    next-SID generation.
    """

    def __init__(self, vocab: SIDVocabulary, max_len: int, cfg: GeneratorConfig,
                 views: list[list[int]] | None = None):
        super().__init__()
        sid_length = vocab.length
        if sid_length < 1:
            raise ValueError("the item-level generator needs the SID length")
        self.cfg, self.sid_length = cfg, sid_length
        # the token range of each SID position: position p's logits cover only its own codes
        self.level_ranges = [(o, o + n) for o, n in zip(vocab.offsets, vocab.sizes)]
        self.views = [list(v) for v in views] if views else [list(range(sid_length))]
        nv = len(self.views)
        self.tok = nn.Embedding(vocab.size, cfg.d_model, padding_idx=PAD)   # also the output layer (tied)
        if not cfg.tie_item_embeddings:
            self.item_tok = nn.Embedding(vocab.size, cfg.d_model, padding_idx=PAD)
        if cfg.prefix_ngram_buckets:
            # prefix n-grams of length 2 .. L of each view's SID (length 1 is the token itself)
            self.prefix_tok = nn.ModuleList(nn.Embedding(cfg.prefix_ngram_buckets, cfg.d_model)
                                            for _ in range(max(len(v) for v in self.views) - 1))
        self.bos = nn.Parameter(torch.zeros(cfg.d_model))
        # positions: BOS + up to (max_len - 1) / sid_length items
        self.pos = nn.Embedding(2 + (max_len - 1) // sid_length, cfg.d_model)
        self.level = nn.Embedding(sid_length, cfg.d_model)
        self.view = nn.Embedding(nv, cfg.d_model)                       # the view an encoder input is read in
        self.task = nn.Embedding(len(TASK_KINDS) * nv * nv, cfg.d_model)
        self.encoder = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
        self.decoder = nn.ModuleList(_Block(cfg, cfg.decoder_d_ff) for _ in range(cfg.decoder_layers))
        if cfg.cross_attention:
            self.cross = nn.ModuleList(_CrossAttention(cfg) for _ in range(cfg.decoder_layers))
        self.drop = FastDropout(cfg.dropout)
        self.enc_norm, self.norm = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        _small_init(self)
        nn.init.normal_(self.bos, std=0.02)

    def _items(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, 1 + L * n) left-padded token rows -> (B, n, L) item tokens (BOS and padding -> PAD)."""
        B, T = tokens.shape
        if (T - 1) % self.sid_length:
            raise ValueError(f"token rows of width {T} are not BOS + whole SIDs of length {self.sid_length}")
        body = tokens[:, 1:]
        return body.masked_fill(body < N_SPECIAL, PAD).reshape(B, -1, self.sid_length)

    def _encode_items(self, items: torch.Tensor, view: int) -> tuple[torch.Tensor, torch.Tensor]:
        """items (B, n, L) -> encoder outputs (B, n + 1, d) and which of them are real (BOS or an item);
        output e is the context after slot e - 1 (slot e - 1 being padding means: after BOS only).
        Reads only the view's SID positions."""
        B, n, _ = items.shape
        real_items = items[:, :, 0] != PAD
        table = self.tok if self.cfg.tie_item_embeddings else self.item_tok
        view_items = items[:, :, self.views[view]]
        x = table(view_items).sum(2) + self.view.weight[view] * real_items[..., None]
        if self.cfg.prefix_ngram_buckets:
            x = x + self._prefix_ngrams(view_items)
        x = torch.cat([torch.zeros(B, 1, self.cfg.d_model), x], 1)
        # BOS sits right before the first real item (left padding: at slot n - k)
        bos_at = n - real_items.sum(1)
        x[torch.arange(B), bos_at] = self.bos
        real = torch.cat([torch.zeros(B, 1, dtype=torch.bool), real_items], 1)
        real[torch.arange(B), bos_at] = True
        pos = (real.long().cumsum(1) - 1).clamp(0, self.pos.num_embeddings - 1)
        h = self.drop(x + self.pos(pos))
        allowed = _causal_mask(real)
        for block in self.encoder:
            h, _ = block(h, allowed)
        return self.enc_norm(h), real

    @staticmethod
    def _memory_mask(real: torch.Tensor, n: int) -> torch.Tensor:
        """(B, n, n + 1): target slot i may attend to encoder outputs 0..i that are real (itself always,
        so that no row is fully masked)."""
        M = real.shape[1]
        seen = torch.tril(torch.ones(n, M, dtype=torch.bool))
        return seen[None] & (real[:, None, :] | torch.eye(n, M, dtype=torch.bool)[None])

    def _prefix_ngrams(self, items: torch.Tensor) -> torch.Tensor:
        """Sum of the hashed prefix n-gram embeddings (lengths 2..L) of items (B, n, L) -> (B, n, d).
        A polynomial hash of the prefix's tokens (deterministic, the same across processes)."""
        h = items[..., 0]
        out = 0
        for k, table in enumerate(self.prefix_tok, start=1):
            h = (h * 1_000_003 + items[..., k]) % 2_147_483_647
            out = out + table(h % self.cfg.prefix_ngram_buckets)
        return out * (items[..., :1] != PAD)

    def encode(self, tokens: torch.Tensor, view: int = 0) -> torch.Tensor:
        return self._encode_items(self._items(tokens), view)[0]

    def _task_index(self, src: int, tgt: int, kind: str) -> int:
        nv = len(self.views)
        return TASK_KINDS.index(kind) * nv * nv + src * nv + tgt

    def _memory(self, enc: torch.Tensor, allowed: torch.Tensor) -> CrossMemory | None:
        """Encoder outputs (G, M, d) and mask (G, n, M) -> the decoder layers' cross-attention memory."""
        if not self.cfg.cross_attention:
            return None
        return CrossMemory([cross.project(enc) for cross in self.cross], allowed)

    def _decode(self, context: torch.Tensor, prefix: torch.Tensor, task: tuple[int, int, str],
                memory: CrossMemory | None = None, compact: bool = False) -> torch.Tensor:
        """context (R, d), prefix (R, s) tokens of the target view -> logits (R, s + 1, vocab).
        ``memory`` (cross_attention) has G groups, mask (G, R / G, M): the R rows are G groups of
        R / G target slots sharing one encoded history."""
        s = prefix.shape[1]
        first = context + self.task.weight[self._task_index(*task)]
        h = torch.cat([first[:, None], self.tok(prefix)], 1) + self.level.weight[self.views[task[1]][: s + 1]]
        h = self.drop(h)
        allowed = torch.tril(torch.ones(s + 1, s + 1, dtype=torch.bool))[None, None]
        for i, block in enumerate(self.decoder):
            if self.cfg.cross_attention:
                G = memory.allowed.shape[0]
                h = self.cross[i](h.reshape(G, -1, *h.shape[1:]), *memory.kv[i], memory.allowed).reshape(h.shape)
            h, _ = block(h, allowed)
        return self._logits(self.norm(h), self.views[task[1]][: s + 1], compact)

    def _logits(self, h: torch.Tensor, levels: list[int], compact: bool = False) -> torch.Tensor:
        """h (R, S, d) -> logits (R, S, vocab). Decoder position j emits SID position ``levels[j]``:
        only that position's codes are scored (a quarter of a full-vocabulary output layer for
        4-token SIDs); other tokens get -inf. ``compact``: (R, S, width) instead, position j's own
        codes in code order (``_compact_targets``; width = the largest of their codebooks, -inf
        beyond a smaller one): the same softmax without the vocabulary-wide -inf columns, for training."""
        if compact:
            sizes = [self.level_ranges[level][1] - self.level_ranges[level][0] for level in levels]
            weight = self.tok.weight.new_zeros(len(levels), max(sizes), h.shape[-1])
            for j, level in enumerate(levels):
                weight[j, : sizes[j]] = self.tok.weight[slice(*self.level_ranges[level])]
            logits = torch.einsum("rsd,svd->rsv", h, weight)
            if min(sizes) < max(sizes):
                short = torch.arange(max(sizes))[None, :] >= torch.tensor(sizes)[:, None]
                logits = logits.masked_fill(short, float("-inf"))
            return logits
        logits = h.new_full((*h.shape[:2], self.tok.num_embeddings), float("-inf"))
        for j, level in enumerate(levels):
            lo, hi = self.level_ranges[level]
            logits[:, j, lo:hi] = h[:, j] @ self.tok.weight[lo:hi].T
        return logits

    def _decode_step(self, x: torch.Tensor, position: int, state: ItemDecodeState) -> tuple[torch.Tensor, list]:
        """One decoder position for every row (beam search): x (rows, d) its input (before the level
        embedding); attends to the row's cached earlier positions and, with cross_attention, to its
        user's memory. Returns the logits (rows, vocab) and the extended cache. Equals ``_decode`` at
        that position (tested)."""
        level = self.views[state.task[1]][position]
        h = self.drop(x + self.level.weight[level])[:, None]                     # (rows, 1, d)
        memory, rows = state.memory, h.shape[0]
        if memory is not None:
            users = memory.allowed.shape[0]
            grouped = rows % users == 0 and torch.equal(
                state.owner, torch.arange(users).repeat_interleave(rows // users))
            # beams grouped by user (beam search): a user's beams read its memory in place; else a copy per row
            memory = (CrossMemory(memory.kv, memory.allowed.expand(users, rows // users, -1)) if grouped
                      else memory.rows(state.owner))
            groups = users if grouped else rows
        cache = []
        for i, block in enumerate(self.decoder):
            if self.cfg.cross_attention:
                h = self.cross[i](h.reshape(groups, -1, 1, h.shape[-1]), *memory.kv[i], memory.allowed).reshape(h.shape)
            h, kv = block.step_own(h, None if state.cache is None else state.cache[i])
            cache.append(kv)
        return self._logits(self.norm(h), [level])[:, 0], cache

    def task_logits(self, tokens: torch.Tensor, src: int = 0, tgt: int = 0,
                    kind: str = "next") -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, n, L_tgt, vocab) for every item slot, and their targets (B, n, L_tgt; PAD = none).
        ``next``: item i from the history before it; ``translate``: item i's target view from its source view."""
        return self._task_logits(self._items(tokens), src, tgt, kind)

    def _task_logits(self, items: torch.Tensor, src: int, tgt: int, kind: str,
                     encoded: tuple[torch.Tensor, torch.Tensor] | None = None,
                     compact: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``task_logits`` on items (B, n, L); ``encoded``: ``_encode_items(items, src)`` if already run;
        ``compact``: per-position logits and targets (``_logits``, ``_compact_targets``)."""
        B, n, _ = items.shape
        target = items[:, :, self.views[tgt]]
        if kind == "next":
            enc, real = encoded if encoded is not None else self._encode_items(items, src)
            context = enc[:, :n]                                      # context of slot i = output after slot i - 1
            memory = self._memory(enc, self._memory_mask(real, n))
        else:                                                         # each item alone: BOS, item
            enc, real = self._encode_items(items.reshape(B * n, 1, -1), src)
            context = enc[:, 1].reshape(B, n, -1)
            memory = self._memory(enc, real[:, None, :])
        Lt = target.shape[2]
        logits = self._decode(context.reshape(B * n, -1), target[:, :, : Lt - 1].reshape(B * n, Lt - 1), (src, tgt, kind),
                              memory, compact)
        return logits.reshape(B, n, Lt, -1), self._compact_targets(target, self.views[tgt]) if compact else target

    def _compact_targets(self, target: torch.Tensor, levels: list[int]) -> torch.Tensor:
        """Tokens (..., len(levels)) -> each position's code index within its own codebook; PAD -> IGNORE."""
        start = torch.tensor([self.level_ranges[level][0] for level in levels])
        return torch.where(target == PAD, IGNORE, target - start)

    def forward(self, tokens: torch.Tensor, compact: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, T - 1, vocab) predicting tokens[:, 1:] (single view; every item of every row is a target).
        ``compact`` (training): each position scored over its own codebook only, with the matching
        targets -- (logits (B, T - 1, width), targets (B, T - 1); IGNORE = no target); the same
        softmax without the vocabulary-wide -inf columns."""
        if len(self.views) != 1 or len(self.views[0]) != self.sid_length:
            raise ValueError("forward() predicts whole SIDs; with views use task_logits()")
        logits, target = self._task_logits(self._items(tokens), 0, 0, "next", compact=compact)
        B, n, L, V = logits.shape
        if compact:
            return logits.reshape(B, n * L, V), target.reshape(B, n * L)
        return logits.reshape(B, n * L, V)

    def alignment_loss(self, tokens: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
        """MACRec's implicit alignment: InfoNCE between the encoder states of the same history read in
        view 0 and in view 1 (the state after each row's last item; the other rows are negatives)."""
        items = self._items(tokens)
        return self._alignment(self._encode_items(items, 0)[0], self._encode_items(items, 1)[0], temperature)

    @staticmethod
    def _alignment(enc0: torch.Tensor, enc1: torch.Tensor, temperature: float) -> torch.Tensor:
        a, b = F.normalize(enc0[:, -1], dim=-1), F.normalize(enc1[:, -1], dim=-1)
        logits = a @ b.T / temperature
        labels = torch.arange(len(a))
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))

    def multi_view_loss(self, tokens: torch.Tensor, tasks: list[tuple[int, int, str]],
                        implicit_alignment: float = 0.0, temperature: float = 0.1) -> torch.Tensor:
        """The training loss of a multi-view generator: the sum of ``tasks``' losses, plus
        ``implicit_alignment`` x the alignment loss. Each view's history is encoded once and shared by
        the ``next`` tasks reading it and by the alignment (one encoder pass per view per batch, as
        against one per task), and each SID position is scored over its own codebook only (compact
        logits); equals summing ``task_logits`` / ``alignment_loss`` without dropout (tested)."""
        items = self._items(tokens)
        encoded: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def history(view: int) -> tuple[torch.Tensor, torch.Tensor]:
            if view not in encoded:
                encoded[view] = self._encode_items(items, view)
            return encoded[view]

        loss = sum(_task_loss(*self._task_logits(items, src, tgt, kind, history(src) if kind == "next" else None,
                                                 compact=True), ignore_index=IGNORE)
                   for src, tgt, kind in tasks)
        if implicit_alignment > 0:
            loss = loss + implicit_alignment * self._alignment(history(0)[0], history(1)[0], temperature)
        return loss

    def start(self, tokens: torch.Tensor, task: tuple[int, int, str] = (0, 0, "next")) -> tuple[torch.Tensor, ItemDecodeState]:
        enc, real = self._encode_items(self._items(tokens), task[0])
        context = enc[:, -1]
        memory = self._memory(enc, real[:, None, :])      # projected once per user, shared by its beams
        prefix = torch.zeros(tokens.shape[0], 0, dtype=torch.long)
        state = ItemDecodeState(context, prefix, task, memory, torch.arange(tokens.shape[0]))
        logits, cache = self._decode_step(context + self.task.weight[self._task_index(*task)], 0, state)
        return logits, dataclasses.replace(state, cache=cache)

    def extend(self, state: ItemDecodeState, tokens: torch.Tensor) -> tuple[torch.Tensor, ItemDecodeState]:
        """Feed each row's newly chosen token; only that position runs (the earlier ones are cached)."""
        logits, cache = self._decode_step(self.tok(tokens), state.prefix.shape[1] + 1, state)
        prefix = torch.cat([state.prefix, tokens[:, None]], 1)
        return logits, dataclasses.replace(state, prefix=prefix, cache=cache)


SIDGenerator = TokenHistoryGenerator | ItemHistoryGenerator


def build_generator(vocab: SIDVocabulary, max_len: int, cfg: GeneratorConfig,
                    views: list[list[int]] | None = None) -> SIDGenerator:
    """The generator ``cfg.history`` names; max_len: ``max_tokens(cfg, sid_length)``.
    ``views`` (SID positions per view) needs the item-level model."""
    if cfg.history == "items":
        return ItemHistoryGenerator(vocab, max_len, cfg, views)
    if views and len(views) > 1:
        raise ValueError("multi-view generation (MACRec) needs history: items")
    return TokenHistoryGenerator(vocab.size, max_len, cfg, sid_length=vocab.length)


def max_tokens(cfg: GeneratorConfig, sid_length: int) -> int:
    """Longest token row a generator sees: BOS + (max_history + 1) SIDs (a training window)."""
    return 1 + (cfg.max_history + 1) * sid_length


def _sequences_to_tokens(item_rows: list[list[int]], sid_tokens: np.ndarray, max_items: int) -> list[list[int]]:
    """Token lists ``BOS + sid tokens of the last max_items items`` per sequence."""
    return [[BOS] + sid_tokens[rows[-max_items:]].reshape(-1).tolist() for rows in item_rows]


def _pad_left(seqs: list[list[int]]) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    out = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
    return out


def training_windows(sequences: list[list[int]], max_history: int) -> list[list[int]]:
    """Windows of at most max_history + 1 items covering each training sequence from its end."""
    out = []
    for s in sequences:
        if len(s) < 2:
            continue
        end = len(s)
        while end >= 2:
            out.append(s[max(0, end - max_history - 1):end])
            end -= max_history
    return out


@dataclass
class ViewIndex:
    """The trie of one view's SIDs (some SID positions) and the items behind each: in a view, several
    items may share a SID (MACRec's text codes of two items can agree); the whole SID is unique."""

    positions: list[int]
    trie: SIDTrie               # over unique view SIDs; trie.item(sid) -> index into ``items``
    items: list[list[int]]      # unique view SID -> item rows
    keys: list[tuple[int, ...]]  # unique view SIDs
    key_of: np.ndarray          # item row -> index into ``keys``

    @classmethod
    def build(cls, sids: np.ndarray, positions: list[int]) -> "ViewIndex":
        unique, inverse = np.unique(sids[:, positions], axis=0, return_inverse=True)
        inverse = np.asarray(inverse).reshape(-1)
        items: list[list[int]] = [[] for _ in range(len(unique))]
        for row, k in enumerate(inverse.tolist()):
            items[k].append(row)
        keys = [tuple(int(c) for c in u) for u in unique.tolist()]
        return cls(list(positions), SIDTrie(keys, list(range(len(unique)))), items, keys, inverse)

    def fully_covered(self, rows: set[int]) -> set[tuple[int, ...]]:
        """The view SIDs all of whose items are in ``rows`` (a beam need not produce them)."""
        keys = {int(self.key_of[r]) for r in rows}
        return {self.keys[k] for k in keys if all(i in rows for i in self.items[k])}


def view_tasks(cfg: GeneratorConfig, n_views: int) -> list[tuple[int, int, str]]:
    """(source view, target view, kind) training tasks of a multi-view generator."""
    tasks = [(v, v, "next") for v in range(n_views)] if "next" in cfg.view_tasks else []
    pairs = [(a, b) for a in range(n_views) for b in range(n_views) if a != b]
    if "cross_next" in cfg.view_tasks:
        tasks += [(a, b, "next") for a, b in pairs]
    if "translate" in cfg.view_tasks:
        tasks += [(a, b, "translate") for a, b in pairs]
    if not tasks:
        raise ValueError("view_tasks leaves no training task")
    return tasks


@torch.no_grad()
def beam_search(model, histories: torch.Tensor, trie: SIDTrie, vocab: SIDVocabulary,
                beam_size: int, precision: Precision = "fp32", positions: list[int] | None = None,
                task: tuple[int, int, str] | None = None,
                exclude: list[set[tuple[int, ...]]] | None = None) -> tuple[list[list[tuple[int, ...]]], torch.Tensor]:
    """Batched beam search constrained by ``trie``; returns per user the SIDs (best first) and scores.
    ``exclude``: per user, complete SIDs the search must not produce (masked at the last position).

    histories: (batch, T) left-padded token ids ending with the last history item's tokens.
    ``model`` provides ``start(tokens) -> (last logits, state)`` and ``extend(state, tokens)``,
    with ``state.select(rows)``: the history is encoded once, and each decoding step feeds
    only the new token of each beam against the cached keys/values. ``positions``: the SID
    positions generated (a view; default all); ``task`` is passed to ``model.start`` (item-level
    model: source view, target view, kind).
    """
    model.eval()
    B = histories.shape[0]
    offsets = vocab.offsets
    positions = list(range(vocab.length)) if positions is None else positions
    with autocast(precision):
        logits, state = model.start(histories) if task is None else model.start(histories, task=task)
    banned = _banned_leaves(trie, exclude) if exclude is not None else None
    scores = torch.zeros(B, 1)                        # (B, beams)
    nodes = torch.zeros(B, dtype=torch.long)          # each row's trie node (its prefix); -1 = dead
    codes = torch.zeros(B, 0, dtype=torch.long)       # each row's prefix
    beams = 1
    for step, position in enumerate(positions):
        if step:
            with autocast(precision):
                logits, state = model.extend(state, new_tokens)
        lo, hi = offsets[position], offsets[position] + vocab.sizes[position]
        logp = F.log_softmax(logits.float(), dim=-1)[:, lo:hi]  # (B * beams, codes at this position)
        child = trie.children(step, nodes, hi - lo)              # (B * beams, codes): -1 = no item there
        valid = child >= 0
        if banned is not None and step == len(positions) - 1:
            user = torch.arange(B).repeat_interleave(beams)[:, None]
            query = user * trie.n_leaves + child
            at = torch.searchsorted(banned, query).clamp_max(max(len(banned) - 1, 0))
            valid &= ~((banned[at] == query) if len(banned) else torch.zeros_like(valid))
        cand = (scores.reshape(-1, 1) + logp.masked_fill(~valid, float("-inf"))).reshape(B, beams * logp.shape[1])
        k = min(beam_size, int(torch.isfinite(cand).sum(1).max()))
        top_scores, top_idx = cand.topk(k, dim=1)
        parent = top_idx // logp.shape[1]
        code = top_idx % logp.shape[1]
        rows = (torch.arange(B)[:, None] * beams + parent).reshape(-1)
        new_tokens = (code + lo).reshape(-1)
        state = state.select(rows)
        nodes = child.reshape(B, -1).gather(1, top_idx).reshape(-1)
        codes = torch.cat([codes[rows], code.reshape(-1, 1)], 1)
        scores = top_scores
        beams = k
    finite = torch.isfinite(scores).tolist()
    per_user = codes.reshape(B, beams, -1).tolist()
    sids = [[tuple(sid) for sid, ok in zip(per_user[b], finite[b]) if ok] for b in range(B)]
    return sids, scores


def _banned_leaves(trie: SIDTrie, exclude: list[set[tuple[int, ...]]]) -> torch.Tensor:
    """Sorted keys ``user * n_leaves + leaf`` of each user's excluded SIDs (those in the trie)."""
    keys = [u * trie.n_leaves + leaf for u, sids in enumerate(exclude) for sid in sids
            if (leaf := trie.leaf(sid)) is not None]
    return torch.tensor(sorted(keys), dtype=torch.long)


class WeightAverage:
    """Exponential moving average of a model's floating-point weights, updated after every optimiser step.

    The decay ramps up as ``min(decay, (1 + step) / (10 + step))`` so the first steps do not drag the
    average towards the initial weights (the usual warm-up of a weight EMA). Validating the averaged
    weights takes much of the step-to-step noise out of picking the epoch."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach(), 1 - d)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.shadow, strict=False)

    @contextlib.contextmanager
    def swapped_in(self, model: nn.Module):
        """The averaged weights in ``model`` for the duration; the live ones restored after."""
        live = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.shadow}
        self.copy_to(model)
        try:
            yield model
        finally:
            model.load_state_dict(live, strict=False)


def train_generator(train_sequences: list[list[int]], sids: np.ndarray, cfg: GeneratorConfig,
                    valid: tuple[list[list[int]], list[int]] | None = None, on_epoch=None,
                    views: list[list[int]] | None = None) -> tuple[SIDGenerator, SIDVocabulary, list[dict]]:
    """Train on item-row sequences (training split only). Early stopping on validation Recall@10.

    ``views`` (SID positions per view, e.g. MACRec's branches) trains the multi-aspect tasks of
    ``cfg.view_tasks`` (+ the implicit alignment) instead of whole-SID next-item prediction."""
    from sidkit.retrieval.metrics import recall_at_k, target_ranks

    torch.manual_seed(cfg.seed)
    g = torch_generator(cfg.seed)
    vocab = SIDVocabulary.from_sids(sids)
    sid_tokens = vocab.tokens(sids)
    max_len = max_tokens(cfg, vocab.length)
    multi_view = bool(views) and len(views) > 1
    model = build_generator(vocab, max_len, cfg, views if multi_view else None)
    compact = isinstance(model, ItemHistoryGenerator)   # per-codebook logits (the token model scores the vocabulary)
    tasks = view_tasks(cfg, len(views)) if multi_view else []
    if multi_view and distributed.active():
        raise ValueError("multi-view (MACRec) generator training runs several forward passes per step; "
                         "it is not supported under DDP -- run it on one process")
    # under torch.distributed: DDP over ranks, each taking its share of every global batch
    net = nn.parallel.DistributedDataParallel(model) if distributed.active() else model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)  # one kernel, not ~10 ops per tensor
    windows = _sequences_to_tokens(training_windows(train_sequences, cfg.max_history), sid_tokens, cfg.max_history + 1)
    total_steps = cfg.epochs * math.ceil(len(windows) / cfg.batch_size)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return cfg.lr
        progress_ = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_)))

    step = 0
    average = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    lengths = torch.tensor([len(w) for w in windows])
    history, best, best_state, bad = [], -1.0, None, 0
    valid_set, indexes = None, view_indexes(sids, views)
    if valid is not None:
        users = np.arange(len(valid[0]))
        if 0 < cfg.valid_users < len(users):
            users = np.sort(np.random.default_rng(cfg.seed).choice(users, cfg.valid_users, replace=False))
        valid_set = ([valid[0][u] for u in users], [valid[1][u] for u in users])
    for epoch in progress(range(cfg.epochs), desc="SID generator", unit="epoch"):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(windows), generator=g)
        order = order[torch.argsort(lengths[order], stable=True)]  # similar lengths together, less padding
        batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        total = 0.0
        for bi in torch.randperm(len(batches), generator=g).tolist():
            batch = batches[bi]
            n_targets = sum(len(windows[i]) - 1 for i in batch.tolist())   # the global batch's tokens
            mine = distributed.shard(batch)
            x = _pad_left([windows[i] for i in mine.tolist()])
            with autocast(cfg.precision):
                if multi_view:
                    loss = model.multi_view_loss(x, tasks, cfg.implicit_alignment)
                elif compact:
                    logits, target = net(x, compact=True)
                else:
                    logits = net(x)
                    target = x[:, 1:].masked_fill(x[:, 1:] < N_SPECIAL, IGNORE)   # BOS of left-padded rows: no target
            if not multi_view:
                # sum over this rank's tokens / the global batch's tokens; DDP averages over ranks
                loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1),
                                       ignore_index=IGNORE, reduction="sum") / n_targets * distributed.world_size()
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if average is not None:
                average.update(model, step)
            step += 1
            total += loss.item() / distributed.world_size() * len(batch)
        record = {"epoch": epoch, "loss": total / len(windows), "lr": lr_at(step), "seconds": time.perf_counter() - t0}
        if valid_set is not None and ((epoch + 1) % cfg.valid_every == 0 or epoch + 1 == cfg.epochs):
            t1 = time.perf_counter()
            with average.swapped_in(model) if average is not None else contextlib.nullcontext():
                ranked = generate_ranked(model, vocab, sids, valid_set[0], cfg, views, indexes)
                record["valid_recall@10"] = recall_at_k(target_ranks(ranked, valid_set[1]), 10)
                if record["valid_recall@10"] > best:   # keep the weights just validated (the average if on)
                    best, best_state, bad = record["valid_recall@10"], {k: v.clone() for k, v in model.state_dict().items()}, 0
                else:
                    bad += 1
            record["valid_seconds"] = time.perf_counter() - t1
        history.append(record)
        if on_epoch:
            on_epoch(epoch, record)
        if valid_set is not None and bad >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    elif average is not None:
        average.copy_to(model)
    log.info("generator trained: %d epochs, best valid recall@10 %.4f", len(history), best)
    return model, vocab, history


def _task_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = PAD) -> torch.Tensor:
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=ignore_index)


def view_indexes(sids: np.ndarray, views: list[list[int]] | None) -> list[ViewIndex]:
    """One ViewIndex per view (several views only for a multi-view SID; else the whole SID)."""
    return [ViewIndex.build(sids, v) for v in (views if views and len(views) > 1 else [list(range(sids.shape[1]))])]


def generate_ranked(model: SIDGenerator, vocab: SIDVocabulary, sids: np.ndarray, histories: list[list[int]],
                    cfg: GeneratorConfig, views: list[list[int]] | None = None,
                    indexes: list[ViewIndex] | None = None) -> list[list[int]]:
    """Ranked item rows per history (item rows), by beam search batched across users.

    One view (any SID): the beams' SIDs in score order. Several views (MACRec): each view's beams
    (history and target read in that view) give their items the beam's log-probability; with
    ``cfg.ensemble_bonus`` set, an item found in both views scores the mean plus the bonus, items
    found in one view keep their score (the dual-view ensemble); otherwise view 0's beams only.
    Items sharing a view SID share its score, in catalogue order. ``indexes``: ``view_indexes(sids,
    views)`` when the caller ranks repeatedly (validation), so the tries are built once.
    """
    indexes = indexes or view_indexes(sids, views)
    multi_view = len(indexes) > 1
    used = list(range(len(indexes))) if multi_view and cfg.ensemble_bonus is not None else [0]
    sid_tokens = vocab.tokens(sids)
    out: list[list[int]] = []
    for start in range(0, len(histories), cfg.eval_batch_size):
        rows = histories[start:start + cfg.eval_batch_size]
        batch = _pad_left(_sequences_to_tokens(rows, sid_tokens, cfg.max_history))
        seen = [set(r) for r in rows] if cfg.exclude_history else [set() for _ in rows]
        per_view = []
        for v in used:
            exclude = [indexes[v].fully_covered(s) for s in seen] if cfg.exclude_history else None
            ranked, scores = beam_search(model, batch, indexes[v].trie, vocab, cfg.beam_size, precision=cfg.precision,
                                         positions=indexes[v].positions, task=(v, v, "next") if multi_view else None,
                                         exclude=exclude)
            per_view.append((v, ranked, scores))
        for b in range(batch.shape[0]):
            found: dict[int, list[float]] = {}
            for v, ranked, scores in per_view:
                for j, sid in enumerate(ranked[b]):
                    for item in indexes[v].items[indexes[v].trie.item(sid)]:
                        if item not in seen[b]:
                            found.setdefault(item, []).append(float(scores[b, j]))
            if len(used) == 1:
                out.append(list(found))            # insertion order = beam order
            else:
                final = {i: (sum(s) / len(s) + cfg.ensemble_bonus if len(s) > 1 else s[0]) for i, s in found.items()}
                out.append(sorted(final, key=lambda i: -final[i]))
    return out
