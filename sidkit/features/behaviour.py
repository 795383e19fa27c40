"""Behaviour embeddings: item vectors from a SASRec model trained on the training split only.

Why SASRec: the downstream tasks (generative retrieval, ranking over histories) are
sequential, ADA-SID and MMQ stage 2 use a behaviour embedding as produced by a
sequential recommender, and methods.md §7 recommends SASRec (BCE, 32-64-d) trained on
the training split so that validation and test interactions cannot leak into SIDs.
Matrix factorisation would ignore order; it is not offered.

Model: item embeddings (shared with the output layer) + learned positions, ``n_layers``
pre-norm causal transformer blocks. ``loss``: ``bce`` (default, kept for the existing rows):
binary cross-entropy with one uniformly sampled negative per position (Kang & McAuley 2018);
``ce``: full-softmax cross-entropy over the whole catalogue, the objective under which SASRec
re-runs reach the published Beauty numbers (``sasrec_loss``, also what the item-ID reference
in benchmarks/references.py trains). Items with no training interaction keep their random
initial vector and are masked out (``mask=False``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sidkit.devices import built_on_cpu, runs_on_device, to_device
from sidkit.utils import log, progress, torch_generator


@dataclass(frozen=True)
class SASRecConfig:
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 2
    max_len: int = 50
    dropout: float = 0.2          # on the input embeddings
    block_dropout: float = 0.0    # inside the transformer blocks (CPU dropout RNG is costly: off by default)
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0
    bf16: bool = False  # measured slower than fp32 for this small model on CPU (BENCHMARKS.md)
    loss: str = "bce"   # "bce" (one sampled negative per position) | "ce" (full softmax over the catalogue)

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"SASRec loss must be one of {LOSSES}, got {self.loss!r}")


LOSSES = ("bce", "ce")


class SASRec(nn.Module):
    def __init__(self, n_items: int, cfg: SASRecConfig):
        super().__init__()
        self.cfg = cfg
        self.item = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0)
        self.pos = nn.Embedding(cfg.max_len, cfg.dim)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.n_heads, cfg.dim * 2, cfg.block_dropout,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        nn.init.normal_(self.item.weight, std=cfg.dim ** -0.5)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """seq: (batch, L <= max_len) item indices (0 = padding, left-padded). Returns (batch, L, dim).

        Positions count back from the most recent item (the last column is position 0), so a
        batch can be trimmed to its longest sequence without changing any item's position.
        """
        L = seq.shape[1]
        positions = torch.arange(L - 1, -1, -1, device=seq.device)
        h = self.item(seq) * self.cfg.dim ** 0.5 + self.pos(positions)[None]
        h = self.drop(h) * (seq > 0).unsqueeze(-1)
        causal = torch.triu(torch.ones(L, L, dtype=torch.bool, device=seq.device), 1)
        h = self.blocks(h, mask=causal)
        return self.norm(h)


def _windows(sequences: list[list[int]], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded input/target windows: the last max_len+1 items of each sequence."""
    inputs = np.zeros((len(sequences), max_len), np.int64)
    targets = np.zeros((len(sequences), max_len), np.int64)
    for r, s in enumerate(sequences):
        s = s[-(max_len + 1):]
        if len(s) < 2:
            continue
        n = len(s) - 1
        inputs[r, -n:] = s[:-1]
        targets[r, -n:] = s[1:]
    return inputs, targets


@runs_on_device
def train_sasrec(sequences: list[list[int]], n_items: int, cfg: SASRecConfig,
                 on_epoch=None) -> tuple[np.ndarray, list[float]]:
    """Train on index sequences (items numbered 1..n_items). Returns (item table (n_items, dim), losses).
    Runs on ``SIDKIT_DEVICE`` (sidkit.devices): windows stay on the CPU, each batch goes to the device."""
    g = torch_generator(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = built_on_cpu(lambda: SASRec(n_items, cfg))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98))
    inputs, targets = _windows(sequences, cfg.max_len)
    keep = (targets > 0).any(1)
    inputs, targets = torch.from_numpy(inputs[keep]), torch.from_numpy(targets[keep])
    lengths = (inputs > 0).sum(1)
    losses: list[float] = []
    for epoch in progress(range(cfg.epochs), desc="SASRec behaviour model", unit="epoch"):
        model.train()
        total, count = 0.0, 0
        for idx in _length_bucketed_batches(lengths, cfg.batch_size, g):
            x, y = inputs[idx], targets[idx]
            width = int((x > 0).sum(1).max())  # trim the batch to its longest sequence (left padding)
            x, y = to_device(x[:, -width:]), to_device(y[:, -width:])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                h = model(x)
            loss = sasrec_loss(model, h.float(), y, cfg.loss, g)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
        losses.append(total / max(count, 1))
        if on_epoch:
            on_epoch(epoch, losses[-1])
    log.info("SASRec trained: %d epochs, final loss %.4f", cfg.epochs, losses[-1] if losses else float("nan"))
    return model.item.weight.detach()[1:].float().cpu().numpy().copy(), losses


def sasrec_loss(model: SASRec, h: torch.Tensor, y: torch.Tensor, loss: str, g: torch.Generator) -> torch.Tensor:
    """Mean next-item loss over the non-padding positions of ``y`` (0 = padding) given the hidden states ``h``.

    ``bce``: one negative per position drawn uniformly from the catalogue with the CPU generator ``g``;
    ``ce``: softmax over every item (the output layer is the item embedding table)."""
    if loss == "ce":
        valid = y > 0
        return F.cross_entropy(h[valid] @ model.item.weight[1:].T, y[valid] - 1)
    # bce: the arithmetic of the rows measured before ``ce`` existed, kept operation for operation
    n_items = model.item.num_embeddings - 1
    neg = to_device(torch.randint(1, n_items + 1, y.shape, generator=g, device="cpu"))
    pos_logit = (h * model.item(y)).sum(-1)
    neg_logit = (h * model.item(neg)).sum(-1)
    valid = (y > 0).float()
    return ((F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit), reduction="none")
             + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit), reduction="none"))
            * valid).sum() / valid.sum()


def _length_bucketed_batches(lengths: torch.Tensor, batch_size: int, g: torch.Generator) -> list[torch.Tensor]:
    """Shuffled batches of similar-length sequences, so trimming padding saves most of the work.

    Sequences are shuffled, sorted by length within chunks of 50 batches, cut into batches,
    and the batch order is shuffled again (seeded).
    """
    order = torch.randperm(len(lengths), generator=g, device="cpu")
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[torch.argsort(lengths[part], stable=True)]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=g, device="cpu").tolist()]


def behaviour_embeddings(item_ids: list[str], train_sequences: dict[str, list[str]],
                         cfg: SASRecConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """(vectors (n_items, dim), mask of items seen in training, info)."""
    index = {item: i + 1 for i, item in enumerate(item_ids)}
    seqs = [[index[i] for i in s if i in index] for s in train_sequences.values()]
    table, losses = train_sasrec(seqs, len(item_ids), cfg)
    seen = np.zeros(len(item_ids), bool)
    for s in seqs:
        seen[np.asarray(s, dtype=np.int64) - 1] = True
    return table.astype(np.float32), seen, {"model": "SASRec", "losses": losses, "n_sequences": len(seqs)}
