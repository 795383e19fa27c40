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

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

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
    beam_size: int = 20
    eval_batch_size: int = 64
    patience: int = 5
    bf16: bool = False
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


class SIDGenerator(nn.Module):
    def __init__(self, vocab_size: int, max_len: int, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(vocab_size, cfg.d_model, padding_idx=PAD)
        self.pos = nn.Embedding(max_len, cfg.d_model)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.blocks = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.out = nn.Linear(cfg.d_model, vocab_size, bias=False)
        self.out.weight = self.tok.weight  # tied

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (batch, T), left-padded with PAD. Returns logits (batch, T, vocab)."""
        T = tokens.shape[1]
        real = tokens != PAD
        pos = (real.long().cumsum(1) - 1).clamp_min(0)
        h = self.tok(tokens) + self.pos(pos)
        # causal, and no attention to padding -- except a padding position to itself, so that no
        # row is fully masked (a fully masked row gives NaN, which 0-weight attention still spreads)
        eye = torch.eye(T, dtype=torch.bool, device=tokens.device)
        blocked = torch.triu(torch.ones(T, T, dtype=torch.bool, device=tokens.device), 1)[None] | (~real[:, None, :] & ~eye)
        mask = blocked.repeat_interleave(self.cfg.n_heads, dim=0)
        h = self.blocks(h, mask=mask)
        return self.out(self.norm(h))


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
def beam_search(model: SIDGenerator, histories: torch.Tensor, trie: SIDTrie, vocab: SIDVocabulary,
                beam_size: int) -> tuple[list[list[tuple[int, ...]]], torch.Tensor]:
    """Batched beam search constrained by ``trie``; returns per user the SIDs (best first) and scores.

    histories: (batch, T) left-padded token ids ending with the last history item's tokens.
    """
    model.eval()
    B = histories.shape[0]
    offsets = vocab.offsets
    seqs = histories                                  # (B * beams, T + t)
    scores = torch.zeros(B, 1)                        # (B, beams)
    prefixes: list[tuple[int, ...]] = [()] * B        # per row of seqs
    beams = 1
    for step in range(vocab.length):
        logp = F.log_softmax(model(seqs)[:, -1].float(), dim=-1)  # (B * beams, V)
        lo, hi = offsets[step], offsets[step] + vocab.sizes[step]
        logp = logp[:, lo:hi]
        mask = torch.full_like(logp, float("-inf"))
        for r, prefix in enumerate(prefixes):
            allowed = trie.allowed(prefix)
            mask[r, allowed] = 0.0
        cand = (scores.reshape(-1, 1) + logp + mask).reshape(B, beams * logp.shape[1])
        k = min(beam_size, int(torch.isfinite(cand).sum(1).max()))
        top_scores, top_idx = cand.topk(k, dim=1)
        parent = top_idx // logp.shape[1]
        code = top_idx % logp.shape[1]
        rows = (torch.arange(B)[:, None] * beams + parent).reshape(-1)
        new_tokens = (code + lo).reshape(-1, 1)
        seqs = torch.cat([seqs[rows], new_tokens], 1)
        prefixes = [prefixes[r] + (int(c),) for r, c in zip(rows.tolist(), code.reshape(-1).tolist())]
        scores = top_scores
        beams = k
    sids = [[prefixes[b * beams + j] for j in range(beams) if math.isfinite(float(scores[b, j]))] for b in range(B)]
    return sids, scores


def train_generator(train_sequences: list[list[int]], sids: np.ndarray, cfg: GeneratorConfig,
                    valid: tuple[list[list[int]], list[int]] | None = None, trie: SIDTrie | None = None,
                    on_epoch=None) -> tuple[SIDGenerator, SIDVocabulary, list[dict]]:
    """Train on item-row sequences (training split only). Early stopping on validation Recall@10."""
    from sidkit.retrieval.metrics import recall_at_k

    torch.manual_seed(cfg.seed)
    g = torch_generator(cfg.seed)
    vocab = SIDVocabulary.from_sids(sids)
    sid_tokens = vocab.tokens(sids)
    max_len = 1 + (cfg.max_history + 1) * vocab.length
    model = SIDGenerator(vocab.size, max_len, cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    windows = _sequences_to_tokens(training_windows(train_sequences, cfg.max_history), sid_tokens, cfg.max_history + 1)
    lengths = torch.tensor([len(w) for w in windows])
    history, best, best_state, bad = [], -1.0, None, 0
    for epoch in progress(range(cfg.epochs), desc="SID generator", unit="epoch"):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(windows), generator=g)
        order = order[torch.argsort(lengths[order], stable=True)]  # similar lengths together, less padding
        batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        total = 0.0
        for bi in torch.randperm(len(batches), generator=g).tolist():
            x = _pad_left([windows[i] for i in batches[bi].tolist()])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                logits = model(x[:, :-1])
            target = x[:, 1:]
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=PAD)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batches[bi])
        record = {"epoch": epoch, "loss": total / len(windows), "seconds": time.perf_counter() - t0}
        if valid is not None and trie is not None:
            ranked = generate_ranked(model, vocab, trie, valid[0], sids, cfg)
            hits = [int(t in [trie.item(s) for s in r]) for r, t in zip(ranked, valid[1])]
            ranks = np.array([[trie.item(s) for s in r].index(t) + 1 if h else 0
                              for r, t, h in zip(ranked, valid[1], hits)])
            record["valid_recall@10"] = recall_at_k(ranks, 10)
            if record["valid_recall@10"] > best:
                best, best_state, bad = record["valid_recall@10"], {k: v.clone() for k, v in model.state_dict().items()}, 0
            else:
                bad += 1
        history.append(record)
        if on_epoch:
            on_epoch(epoch, record)
        if valid is not None and bad >= cfg.patience:
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
        ranked, _ = beam_search(model, _pad_left(batch), trie, vocab, cfg.beam_size)
        out.extend(ranked)
    return out
