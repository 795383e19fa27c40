"""The item-level encoder-decoder generator (``history: items``, the default): each history item is one
encoder position (the sum of its SID tokens' embeddings); a small causal decoder generates the next
item's SID tokens, attending to the whole encoded history (``cross_attention``). Also MACRec's
multi-view tasks (sidkit.retrieval.generator says why this architecture).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sidkit.retrieval.config import IGNORE, N_SPECIAL, PAD, TASK_KINDS, GeneratorConfig, SIDVocabulary
from sidkit.retrieval.dropout import FastDropout
from sidkit.retrieval.item_weights import ItemWeights
from sidkit.retrieval.layers import Block, CrossAttention, causal_mask, small_init


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
                 views: list[list[int]] | None = None, item_weights: ItemWeights | None = None):
        super().__init__()
        # sid_weights: router -- each history item's token embeddings scaled by its per-position weights
        self.item_weights = item_weights
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
        self.encoder = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.decoder = nn.ModuleList(Block(cfg, cfg.decoder_d_ff) for _ in range(cfg.decoder_layers))
        if cfg.cross_attention:
            self.cross = nn.ModuleList(CrossAttention(cfg) for _ in range(cfg.decoder_layers))
        self.drop = FastDropout(cfg.dropout)
        self.enc_norm, self.norm = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        small_init(self)
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
        real_items = items[:, :, 0] != PAD
        table = self.tok if self.cfg.tie_item_embeddings else self.item_tok
        view_items = items[:, :, self.views[view]]
        x = table(view_items)
        if self.item_weights is not None:
            x = x * self.item_weights(items)[:, :, self.views[view], None].to(x.dtype)
        x = x.sum(2)
        if self.cfg.prefix_ngram_buckets:
            x = x + self._prefix_ngrams(view_items)
        return self.encode_vectors(x, real_items, view)

    def item_table(self) -> torch.Tensor:
        """The embedding table history items are summed from (token ids index its rows)."""
        return (self.tok if self.cfg.tie_item_embeddings else self.item_tok).weight

    def next_sid_loss_from_vectors(self, x: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The generator's next-SID loss on item windows whose history items are given as vectors x (B, n, d)
        (gradients flow into x; MMQ's stage 2 feeds soft SID embeddings), the targets being their hard
        tokens items (B, n, L) (PAD = no item): every item of a window is predicted from the ones before it."""
        encoded = self.encode_vectors(x, items[:, :, 0] != PAD)
        return task_loss(*self._task_logits(items, 0, 0, "next", encoded, compact=True), ignore_index=IGNORE)

    def encode_vectors(self, x: torch.Tensor, real_items: torch.Tensor,
                       view: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """History items given as input vectors x (B, n, d) (e.g. soft SID embeddings, MMQ's stage 2), real_items
        (B, n) -> encoder outputs (B, n + 1, d) and which of them are real, as ``_encode_items``."""
        B, n, _ = x.shape
        x = x + self.view.weight[view] * real_items[..., None]
        x = torch.cat([torch.zeros(B, 1, self.cfg.d_model, dtype=x.dtype), x], 1)
        # BOS sits right before the first real item (left padding: at slot n - k)
        bos_at = n - real_items.sum(1)
        x[torch.arange(B), bos_at] = self.bos.to(x.dtype)
        real = torch.cat([torch.zeros(B, 1, dtype=torch.bool), real_items], 1)
        real[torch.arange(B), bos_at] = True
        pos = (real.long().cumsum(1) - 1).clamp(0, self.pos.num_embeddings - 1)
        h = self.drop(x + self.pos(pos))
        allowed = causal_mask(real)
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

    def alignment_loss(self, tokens: torch.Tensor, temperature: float = 0.1, scope: str = "items") -> torch.Tensor:
        """MACRec's implicit alignment, an InfoNCE between view 0 and view 1 (``scope``, see GeneratorConfig):
        ``items``: each distinct item of the batch encoded alone in each view (the encoder output at the item),
        the other distinct items as negatives (as the official code pools one item's source-view SID against
        its target-view SID; distinct, so that a popular item is never its own negative); ``histories``: the
        encoder state after each row's last item read in each view, the other rows as negatives."""
        items = self._items(tokens)
        if scope == "items":
            return self._item_alignment(items, temperature)
        return self._alignment(self._encode_items(items, 0)[0], self._encode_items(items, 1)[0], temperature)

    def _item_alignment(self, items: torch.Tensor, temperature: float) -> torch.Tensor:
        flat = items.reshape(-1, items.shape[-1])
        distinct = torch.unique(flat[flat[:, 0] != PAD], dim=0)[:, None]            # (U, 1, L), sorted
        if len(distinct) < 2:
            return items.new_zeros((), dtype=torch.float)
        return self._alignment(self._encode_items(distinct, 0)[0], self._encode_items(distinct, 1)[0], temperature)

    @staticmethod
    def _alignment(enc0: torch.Tensor, enc1: torch.Tensor, temperature: float) -> torch.Tensor:
        """Symmetric InfoNCE between the last encoder outputs of enc0 and enc1 (row i pairs with row i)."""
        a, b = F.normalize(enc0[:, -1], dim=-1), F.normalize(enc1[:, -1], dim=-1)
        logits = a @ b.T / temperature
        labels = torch.arange(len(a))
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))

    def multi_view_loss(self, tokens: torch.Tensor, tasks: list[tuple[int, int, str]],
                        implicit_alignment: float = 0.0, temperature: float = 0.1,
                        alignment_scope: str = "items") -> torch.Tensor:
        """The training loss of a multi-view generator: the sum of ``tasks``' losses, plus
        ``implicit_alignment`` x the alignment loss (``alignment_loss``, ``alignment_scope``). Each view's
        history is encoded once and shared by the ``next`` tasks reading it and by a history-scope
        alignment (one encoder pass per view per batch, as against one per task), and each SID position
        is scored over its own codebook only (compact logits); equals summing ``task_logits`` /
        ``alignment_loss`` without dropout (tested)."""
        items = self._items(tokens)
        encoded: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def history(view: int) -> tuple[torch.Tensor, torch.Tensor]:
            if view not in encoded:
                encoded[view] = self._encode_items(items, view)
            return encoded[view]

        loss = sum(task_loss(*self._task_logits(items, src, tgt, kind, history(src) if kind == "next" else None,
                                                 compact=True), ignore_index=IGNORE)
                   for src, tgt, kind in tasks)
        if implicit_alignment > 0 and alignment_scope == "items":
            loss = loss + implicit_alignment * self._item_alignment(items, temperature)
        elif implicit_alignment > 0:
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

def task_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = PAD) -> torch.Tensor:
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=ignore_index)
