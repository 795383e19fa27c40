"""A DIN-style CTR model (Zhou et al. 2018) whose item representation is built from item IDs,
semantic IDs, or both.

Feature sets (``features``):
    ``id``            item-ID embedding only (the classic baseline; useless for unseen items)
    ``sid``           sum of per-position SID code embeddings (shared by items with shared codes)
    ``id+sid``        the two concatenated
    ``sid_weighted``  SID code embeddings scaled by per-item position weights (ADA-SID's router)
    ``id+sid_weighted`` the item ID with the weighted SID embedding (compares with ``id+sid``)

Target attention: weights ``a_j = MLP([h_j, t, h_j - t, h_j * t])`` over the history (softmax over
real positions: our choice, for stability; DIN leaves them unnormalised), interest ``sum_j a_j h_j``,
prediction ``MLP([interest, t, interest * t])``.

Training data (training split only): every position >= 1 of every user's training sequence is
a positive (history = up to ``max_history`` earlier items); each positive gets ``n_negatives``
negatives drawn uniformly from the catalogue, excluding the positive (seeded); a positive and its
negatives are scored together against their one history.
Evaluation: per user, the held-out item is the positive with ``n_eval_negatives`` uniform
negatives (excluding the user's own items), history as in leave-one-out.
"""

from __future__ import annotations

import time
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sidkit.devices import built_on_cpu, runs_on_device, to_device
from sidkit.errors import ConfigError
from sidkit.utils import log, progress, torch_generator

FeatureSet = Literal["id", "sid", "id+sid", "sid_weighted", "id+sid_weighted"]
FEATURE_SETS = get_args(FeatureSet)


class RankerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    features: FeatureSet = "id+sid"
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
        weighted = cfg.features.endswith("sid_weighted")
        if weighted and weights is None:
            raise ConfigError(f"features {cfg.features!r} need per-item SID weights (an ADA-SID tokenizer with a "
                              "router: the SID table's weight_<p> columns)")
        self.id_emb = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0) if self.use_id else None
        if self.use_sid:
            sizes = (np.asarray(sids, dtype=np.int64).max(0) + 1).tolist()
            sids = torch.as_tensor(np.asarray(sids, dtype=np.int64))
            offsets = torch.tensor([0] + list(np.cumsum(sizes[:-1])), dtype=torch.long)
            table = torch.zeros(n_items + 1, sids.shape[1], dtype=torch.long)
            table[1:] = sids + offsets
            self.register_buffer("sid_table", table)
            self.code_emb = nn.Embedding(int(sum(sizes)), cfg.dim)
            w = torch.ones(n_items + 1, sids.shape[1])
            if weighted:
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
        """history (batch, L) 1-based item indices, 0-padded; target (batch,) or (batch, C) candidates
        sharing that history. Returns logits of target's shape.

        The attention unit's first layer on ``[h, t, h - t, h * t]`` is split by linearity into
        ``(W_h + W_d) h + (W_t - W_d) t + W_p (h * t)``: the history part once per history item, the
        candidate part once per candidate, only the product per (candidate, history item) pair --
        the same function as the concatenation, a quarter of its pairwise FLOPs, no pairwise copy."""
        single = target.dim() == 1
        target = target[:, None] if single else target
        h = self.rep(history)                                                # (B, L, d)
        t = self.rep(target)                                                 # (B, C, d)
        first, rest = self.att[0], self.att[1:]
        w_h, w_t, w_d, w_p = first.weight.split(h.shape[-1], dim=1)
        pre = (h @ (w_h + w_d).T)[:, None] + (t @ (w_t - w_d).T + first.bias)[:, :, None] \
            + (h[:, None] * t[:, :, None]) @ w_p.T                           # (B, C, L, hidden)
        scores = rest(pre).squeeze(-1)                                       # (B, C, L)
        real = (history > 0)[:, None, :]
        weights = torch.softmax(scores.masked_fill(~real, float("-inf")), -1).nan_to_num(0.0)  # no history: zeros
        interest = weights @ h                                               # (B, C, d)
        logits = self.mlp(torch.cat([interest, t, interest * t], -1)).squeeze(-1)
        return logits[:, 0] if single else logits


def _pad(histories: list[list[int]], max_len: int) -> torch.Tensor:
    """Left-padded histories (CPU: examples stay on the CPU, batches go to the device)."""
    out = np.zeros((len(histories), max_len), dtype=np.int64)
    for i, h in enumerate(histories):
        h = h[-max_len:]
        if h:
            out[i, max_len - len(h):] = h
    return torch.from_numpy(out)


def training_examples(sequences: list[list[int]], n_items: int, cfg: RankerConfig, g: torch.Generator):
    """(history (N, L), candidates (N, 1 + n_negatives), labels (N, 1 + n_negatives)) with 1-based item
    indices: each positive (column 0) with its negatives, all sharing the positive's history."""
    hist, tgt = [], []
    for s in sequences:
        for t in range(1, len(s)):
            hist.append([i + 1 for i in s[max(0, t - cfg.max_history):t]])
            tgt.append(s[t] + 1)
    if not tgt:
        raise ConfigError("ranking needs training sequences with at least two items")
    pos_t = torch.tensor(tgt, device="cpu")
    neg = torch.randint(1, n_items, (len(tgt), cfg.n_negatives), generator=g, device="cpu")
    neg = neg + (neg >= pos_t[:, None]).long()                                # uniform, excluding the positive
    candidates = torch.cat([pos_t[:, None], neg], 1)
    labels = torch.zeros(candidates.shape, device="cpu")
    labels[:, 0] = 1.0
    return _pad(hist, cfg.max_history), candidates, labels


@runs_on_device
def train_ranker(sequences: list[list[int]], n_items: int, cfg: RankerConfig, sids: np.ndarray | None = None,
                 weights: np.ndarray | None = None, on_epoch=None) -> tuple[DIN, list[dict]]:
    """Train on 0-based item-row sequences of the training split. A step takes ``batch_size``
    impressions: batch_size / (1 + n_negatives) positives, each with its negatives (one history
    encoding shared by the positive and its negatives). Runs on ``SIDKIT_DEVICE`` (sidkit.devices): the
    examples stay on the CPU, each step's batch goes to the device; the model is returned on the CPU."""
    torch.manual_seed(cfg.seed)
    g = torch_generator(cfg.seed)
    model = built_on_cpu(lambda: DIN(ItemRepresentation(n_items, sids, weights, cfg), cfg))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)   # one kernel, not ~10 ops per tensor
    history, candidates, labels = training_examples(sequences, n_items, cfg, g)
    per_step = max(1, cfg.batch_size // candidates.shape[1])
    log_rows = []
    for epoch in progress(range(cfg.epochs), desc=f"DIN ranker ({cfg.features})", unit="epoch"):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(labels), generator=g, device="cpu")
        total = 0.0
        for start in range(0, len(order), per_step):
            idx = order[start:start + per_step]
            loss = F.binary_cross_entropy_with_logits(model(to_device(history[idx]), to_device(candidates[idx])),
                                                      to_device(labels[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        rec = {"epoch": epoch, "loss": total / len(labels), "seconds": time.perf_counter() - t0}
        log_rows.append(rec)
        if on_epoch:
            on_epoch(epoch, rec)
    log.info("DIN (%s) trained: %d epochs, loss %.4f", cfg.features, cfg.epochs, log_rows[-1]["loss"])
    return model.cpu(), log_rows


def evaluation_impressions(histories: list[list[int]], targets: list[int], n_items: int, cfg: RankerConfig):
    """Per user: the held-out item (label 1) and n_eval_negatives uniform negatives not in the
    user's history or target (label 0). Returns (user index, history, candidate, label), one row per
    impression, a user's rows consecutive."""
    g = torch_generator(cfg.seed + 1)
    users, cand, lab = [], [], []
    for u, (h, t) in enumerate(zip(histories, targets)):
        seen = set(h) | {t}
        negs: list[int] = []
        taken: set[int] = set()
        while len(negs) < min(cfg.n_eval_negatives, n_items - len(seen)):
            draw = torch.randint(0, n_items, (cfg.n_eval_negatives * 2,), generator=g, device="cpu").tolist()
            for i in draw:
                if i not in seen and i not in taken:
                    negs.append(i)
                    taken.add(i)
        negs = negs[:cfg.n_eval_negatives]
        users += [u] * (1 + len(negs))
        cand += [t + 1] + [i + 1 for i in negs]
        lab += [1.0] + [0.0] * len(negs)
    users = np.array(users)
    history = _pad([[i + 1 for i in h] for h in histories], cfg.max_history)[torch.from_numpy(users)]
    return users, history, torch.tensor(cand, device="cpu"), np.array(lab)


@torch.no_grad()
@runs_on_device
def score(model: DIN, history: torch.Tensor, candidates: torch.Tensor, users: np.ndarray | None = None,
          batch_size: int = 4096) -> np.ndarray:
    """Logits per impression row. With ``users`` (consecutive rows of a user share its history, as
    ``evaluation_impressions`` returns them) and the same number of rows per user, each user's
    history is encoded once for all its candidates. Runs on ``SIDKIT_DEVICE``; the model stays there."""
    model.to(torch.get_default_device()).eval()
    if users is not None and len(users):
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        sizes = np.diff(np.r_[starts, len(users)])
        if (sizes == sizes[0]).all():
            per_user = max(1, batch_size // int(sizes[0]))
            hist, cand = history[torch.from_numpy(starts)], candidates.reshape(len(starts), int(sizes[0]))
            out = [model(to_device(hist[i:i + per_user]), to_device(cand[i:i + per_user]))
                   for i in range(0, len(starts), per_user)]
            return torch.cat(out).reshape(-1).cpu().numpy()
    out = [model(to_device(history[i:i + batch_size]), to_device(candidates[i:i + batch_size]))
           for i in range(0, len(candidates), batch_size)]
    return torch.cat(out).cpu().numpy()
