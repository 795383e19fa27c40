"""A DIN-style CTR model (Zhou et al. 2018) whose item representation is built from item IDs,
semantic IDs, or both.

Feature sets (``features``):
    ``id``            item-ID embedding only (the classic baseline; useless for unseen items)
    ``sid``           sum of per-position SID code embeddings (shared by items with shared codes)
    ``id+sid``        the two concatenated
    ``sid_weighted``  SID code embeddings scaled by per-item position weights (ADA-SID's router)

Target attention: weights ``a_j = MLP([h_j, t, h_j - t, h_j * t])`` over the history (softmax over
real positions: our choice, for stability; DIN leaves them unnormalised), interest ``sum_j a_j h_j``,
prediction ``MLP([interest, t, interest * t])``.

Training data (training split only): every position >= 1 of every user's training sequence is
a positive (history = up to ``max_history`` earlier items); each positive gets ``n_negatives``
negatives drawn uniformly from the catalogue, excluding the positive (seeded).
Evaluation: per user, the held-out item is the positive with ``n_eval_negatives`` uniform
negatives (excluding the user's own items), history as in leave-one-out.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sidkit.errors import ConfigError
from sidkit.utils import log, progress, torch_generator

FEATURE_SETS = ("id", "sid", "id+sid", "sid_weighted")


class RankerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    features: str = "id+sid"
    dim: int = Field(32, ge=1)
    attention_hidden: int = 64
    mlp_hidden: int = 64
    max_history: int = 20
    n_negatives: int = Field(4, ge=1)
    n_eval_negatives: int = Field(99, ge=1)
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(512, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    seed: int = 0


class ItemRepresentation(nn.Module):
    def __init__(self, n_items: int, sids: np.ndarray | None, weights: np.ndarray | None, cfg: RankerConfig):
        super().__init__()
        if cfg.features not in FEATURE_SETS:
            raise ConfigError(f"ranking features must be one of {FEATURE_SETS}, got {cfg.features!r}")
        self.features = cfg.features
        self.use_id = "id" in cfg.features.split("+") or cfg.features == "id"
        self.use_sid = cfg.features != "id"
        if self.use_sid and sids is None:
            raise ConfigError(f"features {cfg.features!r} need a SID table")
        if cfg.features == "sid_weighted" and weights is None:
            raise ConfigError("features 'sid_weighted' need per-item SID weights (an ADA-SID tokenizer with a router)")
        self.id_emb = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0) if self.use_id else None
        if self.use_sid:
            sids = torch.as_tensor(np.asarray(sids, dtype=np.int64))
            sizes = (sids.max(0).values + 1).tolist()
            offsets = torch.tensor([0] + list(np.cumsum(sizes[:-1])), dtype=torch.long)
            table = torch.zeros(n_items + 1, sids.shape[1], dtype=torch.long)
            table[1:] = sids + offsets
            self.register_buffer("sid_table", table)
            self.code_emb = nn.Embedding(int(sum(sizes)), cfg.dim)
            w = torch.ones(n_items + 1, sids.shape[1])
            if cfg.features == "sid_weighted":
                w[1:] = torch.as_tensor(np.asarray(weights, dtype=np.float32))
            w[0] = 0
            self.register_buffer("sid_weight", w)
        self.out_dim = cfg.dim * (int(self.use_id) + int(self.use_sid))

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """items: 1-based item indices (0 = padding), any shape -> (..., out_dim)."""
        parts = []
        if self.use_id:
            parts.append(self.id_emb(items))
        if self.use_sid:
            codes = self.code_emb(self.sid_table[items])                     # (..., L, dim)
            parts.append((codes * self.sid_weight[items].unsqueeze(-1)).sum(-2))
        return torch.cat(parts, -1)


class DIN(nn.Module):
    def __init__(self, rep: ItemRepresentation, cfg: RankerConfig):
        super().__init__()
        d = rep.out_dim
        self.rep = rep
        self.att = nn.Sequential(nn.Linear(4 * d, cfg.attention_hidden), nn.ReLU(), nn.Linear(cfg.attention_hidden, 1))
        self.mlp = nn.Sequential(nn.Linear(3 * d, cfg.mlp_hidden), nn.ReLU(), nn.Linear(cfg.mlp_hidden, 1))

    def forward(self, history: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """history (batch, L) 1-based item indices, 0-padded; target (batch,). Returns logits (batch,)."""
        h = self.rep(history)
        t = self.rep(target)
        te = t.unsqueeze(1).expand_as(h)
        scores = self.att(torch.cat([h, te, h - te, h * te], -1)).squeeze(-1)
        real = history > 0
        scores = scores.masked_fill(~real, float("-inf"))
        weights = torch.softmax(scores, 1).nan_to_num(0.0)                   # users with no history: zeros
        interest = (weights.unsqueeze(-1) * h).sum(1)
        return self.mlp(torch.cat([interest, t, interest * t], -1)).squeeze(-1)


def _pad(histories: list[list[int]], max_len: int) -> torch.Tensor:
    out = torch.zeros(len(histories), max_len, dtype=torch.long)
    for i, h in enumerate(histories):
        h = h[-max_len:]
        if h:
            out[i, max_len - len(h):] = torch.tensor(h)
    return out


def training_examples(sequences: list[list[int]], n_items: int, cfg: RankerConfig, g: torch.Generator):
    """(history (N, L), target (N,), label (N,)) with 1-based item indices."""
    hist, tgt = [], []
    for s in sequences:
        for t in range(1, len(s)):
            hist.append([i + 1 for i in s[max(0, t - cfg.max_history):t]])
            tgt.append(s[t] + 1)
    if not tgt:
        raise ConfigError("ranking needs training sequences with at least two items")
    pos_t = torch.tensor(tgt)
    neg = torch.randint(1, n_items, (len(tgt), cfg.n_negatives), generator=g)
    neg = neg + (neg >= pos_t[:, None]).long()                                # uniform, excluding the positive
    h = _pad(hist, cfg.max_history)
    history = torch.cat([h, h.repeat_interleave(cfg.n_negatives, 0)])
    target = torch.cat([pos_t, neg.reshape(-1)])
    label = torch.cat([torch.ones(len(tgt)), torch.zeros(neg.numel())])
    return history, target, label


def train_ranker(sequences: list[list[int]], n_items: int, cfg: RankerConfig, sids: np.ndarray | None = None,
                 weights: np.ndarray | None = None, on_epoch=None) -> tuple[DIN, list[dict]]:
    """Train on 0-based item-row sequences of the training split."""
    torch.manual_seed(cfg.seed)
    g = torch_generator(cfg.seed)
    model = DIN(ItemRepresentation(n_items, sids, weights, cfg), cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history, target, label = training_examples(sequences, n_items, cfg, g)
    log_rows = []
    for epoch in progress(range(cfg.epochs), desc=f"DIN ranker ({cfg.features})", unit="epoch"):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(label), generator=g)
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            loss = F.binary_cross_entropy_with_logits(model(history[idx], target[idx]), label[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        rec = {"epoch": epoch, "loss": total / len(label), "seconds": time.perf_counter() - t0}
        log_rows.append(rec)
        if on_epoch:
            on_epoch(epoch, rec)
    log.info("DIN (%s) trained: %d epochs, loss %.4f", cfg.features, cfg.epochs, log_rows[-1]["loss"])
    return model, log_rows


def evaluation_impressions(histories: list[list[int]], targets: list[int], n_items: int, cfg: RankerConfig):
    """Per user: the held-out item (label 1) and n_eval_negatives uniform negatives not in the
    user's history or target (label 0). Returns (user index, history, candidate, label) tensors."""
    g = torch_generator(cfg.seed + 1)
    users, hist, cand, lab = [], [], [], []
    for u, (h, t) in enumerate(zip(histories, targets)):
        seen = set(h) | {t}
        negs: list[int] = []
        while len(negs) < min(cfg.n_eval_negatives, n_items - len(seen)):
            draw = torch.randint(0, n_items, (cfg.n_eval_negatives * 2,), generator=g).tolist()
            negs.extend(i for i in draw if i not in seen and i not in negs)
        negs = negs[:cfg.n_eval_negatives]
        for item, label in [(t, 1.0)] + [(i, 0.0) for i in negs]:
            users.append(u)
            hist.append([i + 1 for i in h])
            cand.append(item + 1)
            lab.append(label)
    return (np.array(users), _pad(hist, cfg.max_history), torch.tensor(cand), np.array(lab))


@torch.no_grad()
def score(model: DIN, history: torch.Tensor, candidates: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    model.eval()
    out = [model(history[i:i + batch_size], candidates[i:i + batch_size]) for i in range(0, len(candidates), batch_size)]
    return torch.cat(out).numpy()
