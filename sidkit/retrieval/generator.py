"""A decoder-only generator over SID tokens, trained from scratch, with trie-constrained beam search.

Why decoder-only (not TIGER's encoder-decoder): a causal model scores every position of a
user's whole training sequence in one pass (each item's SID tokens are predicted from all
earlier tokens), while an encoder-decoder re-encodes the history once per target. On this
2-core CPU that is the difference between hours and minutes of training
(../shared/docs/stack-notes.md). The decoding problem is the same: generate the next item's
SID token by token, restricted by a trie to SIDs of real items.

Tokens: 0 = padding, 1 = BOS; SID position p's code c is token ``2 + offset[p] + c``. A user's
sequence is ``BOS, sid(item_1), sid(item_2), ...``; positions are counted from BOS (left
padding does not shift them).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

from sidkit import distributed
from sidkit.retrieval.trie import SIDTrie
from sidkit.utils import log, progress, torch_generator

PAD, BOS, N_SPECIAL = 0, 1, 2


class GeneratorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 512
    dropout: float = 0.1
    max_history: int = 20
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200       # linear warm-up, then cosine decay to 10% of lr over `epochs`
    schedule: Literal["cosine", "constant"] = "cosine"
    beam_size: int = 20
    eval_batch_size: int = 64
    patience: int = 5             # validations without improvement before stopping
    valid_every: int = 1          # validate (beam search on validation users) every N epochs
    valid_users: int = 0          # validate on a fixed random sample of this many users (0 = all)
    level_embedding: bool = True  # add an embedding of the SID position (level) each token is at
    bf16: bool = False            # bf16 autocast; measured slower than fp32 at d_model 128 on this CPU
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

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        d = cfg.d_model
        self.n_heads, self.p = cfg.n_heads, cfg.dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, d))
        self.drop = nn.Dropout(cfg.dropout)

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


class SIDGenerator(nn.Module):
    """Decoder-only transformer over SID tokens (weights tied between input and output)."""

    def __init__(self, vocab_size: int, max_len: int, cfg: GeneratorConfig, sid_length: int = 0):
        super().__init__()
        self.cfg = cfg
        self.sid_length = sid_length
        self.tok = nn.Embedding(vocab_size, cfg.d_model, padding_idx=PAD)
        self.pos = nn.Embedding(max_len, cfg.d_model)
        # position p > 0 (BOS is 0) holds a token of SID level (p - 1) % sid_length
        self.level = nn.Embedding(sid_length + 1, cfg.d_model) if cfg.level_embedding and sid_length else None
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
        self.drop = nn.Dropout(cfg.dropout)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.out = nn.Linear(cfg.d_model, vocab_size, bias=False)
        self.out.weight = self.tok.weight  # tied
        # GPT-style small init: with tied N(0, 1) embeddings the initial logits have std ~sqrt(d_model)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)

    def _embed(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        h = self.tok(tokens) + self.pos(pos.clamp_max(self.pos.num_embeddings - 1))
        if self.level is not None:
            h = h + self.level(torch.where(pos > 0, 1 + (pos - 1) % self.sid_length, 0))
        return self.drop(h)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (batch, T), left-padded with PAD. Returns logits (batch, T, vocab)."""
        return self.start(tokens, keep_all=True)[0]

    def start(self, tokens: torch.Tensor, keep_all: bool = False) -> tuple[torch.Tensor, DecodeState]:
        """Run a left-padded batch; returns logits (of the last position unless keep_all) and the decode state."""
        B, T = tokens.shape
        real = tokens != PAD
        pos = (real.long().cumsum(1) - 1).clamp_min(0)
        # causal, and no attention to padding -- except a padding position to itself, so that no
        # row is fully masked (a fully masked row gives NaN, which 0-weight attention still spreads)
        eye = torch.eye(T, dtype=torch.bool, device=tokens.device)
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=tokens.device))
        allowed = (causal[None] & (real[:, None, :] | eye))[:, None]
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


@torch.no_grad()
def beam_search(model, histories: torch.Tensor, trie: SIDTrie, vocab: SIDVocabulary,
                beam_size: int, bf16: bool = False) -> tuple[list[list[tuple[int, ...]]], torch.Tensor]:
    """Batched beam search constrained by ``trie``; returns per user the SIDs (best first) and scores.

    histories: (batch, T) left-padded token ids ending with the last history item's tokens.
    ``model`` provides ``start(tokens) -> (last logits, state)`` and ``extend(state, tokens)``,
    with ``state.select(rows)``: the history is encoded once, and each decoding step feeds
    only the new token of each beam against the cached keys/values.
    """
    model.eval()
    B = histories.shape[0]
    offsets = vocab.offsets
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits, state = model.start(histories)
    scores = torch.zeros(B, 1)                        # (B, beams)
    prefixes: list[tuple[int, ...]] = [()] * B        # per row of the state
    beams = 1
    for step in range(vocab.length):
        if step:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits, state = model.extend(state, new_tokens)
        lo, hi = offsets[step], offsets[step] + vocab.sizes[step]
        logp = F.log_softmax(logits.float(), dim=-1)[:, lo:hi]  # (B * beams, codes at this position)
        mask = torch.full_like(logp, float("-inf"))
        for r, prefix in enumerate(prefixes):
            mask[r, trie.allowed(prefix)] = 0.0
        cand = (scores.reshape(-1, 1) + logp + mask).reshape(B, beams * logp.shape[1])
        k = min(beam_size, int(torch.isfinite(cand).sum(1).max()))
        top_scores, top_idx = cand.topk(k, dim=1)
        parent = top_idx // logp.shape[1]
        code = top_idx % logp.shape[1]
        rows = (torch.arange(B)[:, None] * beams + parent).reshape(-1)
        new_tokens = (code + lo).reshape(-1)
        state = state.select(rows)
        prefixes = [prefixes[r] + (int(c),) for r, c in zip(rows.tolist(), code.reshape(-1).tolist())]
        scores = top_scores
        beams = k
    sids = [[prefixes[b * beams + j] for j in range(beams) if math.isfinite(float(scores[b, j]))] for b in range(B)]
    return sids, scores


def train_generator(train_sequences: list[list[int]], sids: np.ndarray, cfg: GeneratorConfig,
                    valid: tuple[list[list[int]], list[int]] | None = None, trie: SIDTrie | None = None,
                    on_epoch=None) -> tuple[SIDGenerator, SIDVocabulary, list[dict]]:
    """Train on item-row sequences (training split only). Early stopping on validation Recall@10."""
    from sidkit.retrieval.metrics import recall_at_k, target_ranks

    torch.manual_seed(cfg.seed)
    g = torch_generator(cfg.seed)
    vocab = SIDVocabulary.from_sids(sids)
    sid_tokens = vocab.tokens(sids)
    max_len = 1 + (cfg.max_history + 1) * vocab.length
    model = SIDGenerator(vocab.size, max_len, cfg, sid_length=vocab.length)
    # under torch.distributed: DDP over ranks, each taking its share of every global batch
    net = nn.parallel.DistributedDataParallel(model) if distributed.active() else model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
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
    lengths = torch.tensor([len(w) for w in windows])
    history, best, best_state, bad = [], -1.0, None, 0
    valid_set = None
    if valid is not None and trie is not None:
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
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                logits = net(x[:, :-1])
            target = x[:, 1:]
            # sum over this rank's tokens / the global batch's tokens; DDP averages over ranks
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1),
                                   ignore_index=PAD, reduction="sum") / n_targets * distributed.world_size()
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            total += loss.item() / distributed.world_size() * len(batch)
        record = {"epoch": epoch, "loss": total / len(windows), "lr": lr_at(step), "seconds": time.perf_counter() - t0}
        if valid_set is not None and ((epoch + 1) % cfg.valid_every == 0 or epoch + 1 == cfg.epochs):
            t1 = time.perf_counter()
            ranked = generate_ranked(model, vocab, trie, valid_set[0], sids, cfg)
            ranks = target_ranks([[trie.item(s) for s in r] for r in ranked], valid_set[1])
            record["valid_recall@10"] = recall_at_k(ranks, 10)
            record["valid_seconds"] = time.perf_counter() - t1
            if record["valid_recall@10"] > best:
                best, best_state, bad = record["valid_recall@10"], {k: v.clone() for k, v in model.state_dict().items()}, 0
            else:
                bad += 1
        history.append(record)
        if on_epoch:
            on_epoch(epoch, record)
        if valid_set is not None and bad >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    log.info("generator trained: %d epochs, best valid recall@10 %.4f", len(history), best)
    return model, vocab, history


def generate_ranked(model: SIDGenerator, vocab: SIDVocabulary, trie: SIDTrie, histories: list[list[int]],
                    sids: np.ndarray, cfg: GeneratorConfig) -> list[list[tuple[int, ...]]]:
    """Beam-search SIDs for each history (item rows), batched across users."""
    sid_tokens = vocab.tokens(sids)
    out: list[list[tuple[int, ...]]] = []
    for start in range(0, len(histories), cfg.eval_batch_size):
        batch = _sequences_to_tokens(histories[start:start + cfg.eval_batch_size], sid_tokens, cfg.max_history)
        ranked, _ = beam_search(model, _pad_left(batch), trie, vocab, cfg.beam_size, bf16=cfg.bf16)
        out.extend(ranked)
    return out
