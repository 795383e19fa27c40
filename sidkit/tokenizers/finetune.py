"""MMQ stage 2: behaviour-aware fine-tuning of a trained tokenizer through soft indexing.

Soft indexing [V-2nd: "differentiable soft indexing"; formula INF]: at each level the
residual ``r`` is assigned softly, ``p_k = softmax_k(-d_k / tau)``, and the code vector is
``q = e_hard + (sum_k p_k e_k - e_hard)``, detached so the forward pass uses the hard code while
gradients flow through the soft mixture into the codebook and encoder. ``d_k`` is the squared
distance ``||r - e_k||^2`` divided by its mean over the codebook (``temperature_scale:
mean_distance``, the default [INF]): latent distances are small, and on the raw scale tau = 1 gave
a near-uniform assignment on Beauty (entropy 5.42-5.55 of 5.55 nats), i.e. gradients that do not
favour the nearest codes. ``absolute`` keeps the raw distance. Each epoch records the mean
assignment entropy per level (``soft_entropy``, of ``log K``), to check the choice.

Downstream objective (training split only), ``objective`` [INF]:

- ``next_sid``: the SID generator's own loss. A small item-level generator (sidkit.retrieval's
  ItemHistoryGenerator: encoder over the history's items, causal decoder over the next item's SID)
  reads each history item as its *soft* SID embedding -- per SID position, the straight-through
  one-hot of the code (hard forward, the soft assignment's gradient backward) times that position's
  rows of the generator's embedding table, summed as the generator sums a SID's token embeddings --
  and predicts every next item's hard SID position by position (CE per codebook), over windows of
  ``max_len + 1`` items. Gradients reach the codebooks and encoders through the soft assignments.
- ``next_item`` (the earlier stand-in): an item's vector is a linear map of the concatenated
  (soft-)quantised expert latents; a GRU reads the last ``max_len`` items of a history and scores
  every catalogue item (full softmax).

The loss is ``task + content_weight * (multimodal reconstruction + VQ + the method's terms)``, on the
items of the batch, so the codes learn behaviour without forgetting content. Hard SIDs are
re-indexed afterwards by encoding as usual. Works for every multi-expert tokenizer (mmq, adasid,
macrec).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sidkit.errors import ConfigError
from sidkit.quantise import ResidualQuantiser
from sidkit.quantise.kmeans import squared_distances
from sidkit.tokenizers.base import Tokenizer
from sidkit.devices import built_on_cpu, on_device, to_device
from sidkit.utils import log, progress, torch_generator


class SoftIndexingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    epochs: int = Field(5, ge=1)
    temperature: float = Field(0.1, gt=0.0)
    temperature_scale: Literal["mean_distance", "absolute"] = "mean_distance"
    lr: float = Field(3e-4, gt=0.0)
    batch_size: int = Field(256, ge=1)
    max_len: int = Field(20, ge=1)
    hidden: int = Field(64, ge=1)
    content_weight: float = 1.0   # weight of the stage-1 objective (multimodal reconstruction + VQ + method terms)
    objective: Literal["next_item", "next_sid"] = "next_item"   # the downstream task (module docstring)
    seed: int = 0


def soft_quantise(rq: ResidualQuantiser, z: torch.Tensor, temperature: float, scale: str = "mean_distance",
                  entropies: list | None = None, assignments: list | None = None) -> torch.Tensor:
    """Quantised latent with hard codes forward and soft-assignment gradients backward; ``entropies``
    (a list) receives each level's mean assignment entropy (nats), ``assignments`` each level's
    (soft assignment (n, K), hard code (n,))."""
    r = z
    total = torch.zeros_like(z)
    for level in rq.levels:
        e = level.codebook
        d = squared_distances(r, e)
        logits = -(d / d.mean(1, keepdim=True).clamp_min(1e-12).detach() if scale == "mean_distance" else d) / temperature
        p = torch.softmax(logits, dim=1)
        if entropies is not None:
            entropies.append(float(-(p * torch.log(p.clamp_min(1e-30))).sum(1).mean().detach()))
        soft = p @ e
        code = d.argmin(1)
        if assignments is not None:
            assignments.append((p, code))
        hard = e[code]
        q = soft + (hard - soft).detach()
        total = total + q
        r = r - q
    return total


class NextItemHead(nn.Module):
    def __init__(self, item_dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(item_dim, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)

    def forward(self, item_vecs: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """item_vecs (n_items + 1, item_dim) with row 0 = padding; history (batch, L) -> logits (batch, n_items)."""
        h = self.proj(item_vecs)
        seq = h[history]
        _, last = self.gru(seq)
        return last[-1] @ h[1:].T


class NextSIDHead(nn.Module):
    """``objective: next_sid``: the SID generator's next-SID loss over soft SID embeddings (module docstring)."""

    def __init__(self, codebook_sizes: list[int], hidden: int, max_len: int):
        super().__init__()
        from sidkit.retrieval.generator import GeneratorConfig, ItemHistoryGenerator, SIDVocabulary, max_tokens

        cfg = GeneratorConfig(d_model=hidden, n_layers=1, n_heads=max(1, hidden // 32), d_ff=4 * hidden,
                              decoder_layers=1, dropout=0.1, max_history=max_len, precision="fp32")
        self.vocab = SIDVocabulary(list(codebook_sizes))
        self.generator = ItemHistoryGenerator(self.vocab, max_tokens(cfg, self.vocab.length), cfg)

    def forward(self, assignments: list[tuple[torch.Tensor, torch.Tensor]], windows: torch.Tensor) -> torch.Tensor:
        """assignments: per SID position (soft assignment (n_items, K), hard code (n_items,)); windows (B, W)
        1-based item indices, 0 = padding (left). Returns the mean next-SID cross-entropy."""
        from sidkit.retrieval.config import PAD

        table = self.generator.item_table()
        vecs = 0
        for (p, code), offset, size in zip(assignments, self.vocab.offsets, self.vocab.sizes):
            one_hot = F.one_hot(code, size).to(p.dtype)
            vecs = vecs + (one_hot + p - p.detach()) @ table[offset:offset + size]   # hard forward, soft backward
        vecs = torch.cat([vecs.new_zeros(1, vecs.shape[1]), vecs])
        codes = torch.stack([code for _, code in assignments], 1) + torch.tensor(self.vocab.offsets)
        tokens = torch.cat([torch.full((1, codes.shape[1]), PAD), codes])[windows]          # (B, W, L)
        return self.generator.next_sid_loss_from_vectors(vecs[windows], tokens)


def _windows(sequences: list[list[int]], max_len: int) -> torch.Tensor:
    """Left-padded windows of max_len + 1 items covering every training sequence (items 1-based), as the
    generator trains (sidkit.retrieval.training.training_windows)."""
    from sidkit.retrieval.training import training_windows

    rows = training_windows(sequences, max_len)
    if not rows:
        raise ConfigError("soft indexing needs training sequences with at least two items")
    out = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
    for r, w in enumerate(rows):
        out[r, out.shape[1] - len(w):] = torch.tensor(w)
    return out


def _examples(sequences: list[list[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(history, target) pairs for every position >= 1 of every training sequence (items 1-based)."""
    hist, tgt = [], []
    for s in sequences:
        for t in range(1, len(s)):
            h = s[max(0, t - max_len):t]
            hist.append([0] * (max_len - len(h)) + h)
            tgt.append(s[t])
    if not hist:
        raise ConfigError("soft indexing needs training sequences with at least two items")
    return torch.tensor(hist), torch.tensor(tgt)


def finetune_soft_indexing(tokenizer: Tokenizer, x: np.ndarray, sequences: list[list[int]],
                           cfg: SoftIndexingConfig | dict, on_epoch=None) -> list[dict]:
    """Fine-tune ``tokenizer`` in place. ``sequences`` hold 0-based row indices of ``x``."""
    from sidkit.tokenizers.multi_expert import MultiExpertTokenizer

    cfg = cfg if isinstance(cfg, SoftIndexingConfig) else SoftIndexingConfig.model_validate(cfg)
    if not isinstance(tokenizer, MultiExpertTokenizer):
        raise ConfigError(f"soft-indexing fine-tuning needs a multi-expert tokenizer (mmq, adasid, macrec), "
                          f"not {tokenizer.method}")
    with on_device() as device:   # SIDKIT_DEVICE (sidkit.devices); the tokenizer is left on the CPU
        history = _finetune(tokenizer.to(device), x, sequences, cfg, on_epoch)
    tokenizer.cpu()
    return history


def _finetune(tokenizer, x: np.ndarray, sequences: list[list[int]], cfg: SoftIndexingConfig, on_epoch) -> list[dict]:
    g = torch_generator(cfg.seed)
    torch.manual_seed(cfg.seed)
    xt = to_device(np.asarray(x, dtype=np.float32))
    one_based = [[i + 1 for i in s] for s in sequences]
    if cfg.objective == "next_sid":
        rows = _windows(one_based, cfg.max_len)                       # the examples are windows
        sizes = [level.codebook.shape[0] for s in tokenizer.specs for level in tokenizer.experts[s.name].rq.levels]
        head = built_on_cpu(lambda: NextSIDHead(sizes, cfg.hidden, cfg.max_len))
    else:
        hist, tgt = _examples(one_based, cfg.max_len)
        rows = hist
        head = built_on_cpu(lambda: NextItemHead(tokenizer.config.latent_dim * len(tokenizer.specs), cfg.hidden))
    opt = torch.optim.Adam([*tokenizer.parameters(), *head.parameters()], lr=cfg.lr)
    history: list[dict] = []
    for epoch in progress(range(cfg.epochs), desc="soft-indexing fine-tuning", unit="epoch"):
        t0 = time.perf_counter()
        tokenizer.train()
        order = torch.randperm(len(rows), generator=g, device="cpu")
        sums = {"loss": 0.0, "task_loss": 0.0, "recon_loss": 0.0, "rq_loss": 0.0}
        entropies: list[float] | None = []            # of the epoch's first batch: every item, every level
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            xv = tokenizer.split(xt)
            z = tokenizer.latents(xv, tokenizer.present(xv))
            assignments: list = []
            vecs = torch.cat([soft_quantise(tokenizer.experts[s.name].rq, z[s.name], cfg.temperature,
                                            cfg.temperature_scale, entropies, assignments) for s in tokenizer.specs], 1)
            if entropies:
                soft_entropy, entropies = entropies, None
            if cfg.objective == "next_sid":
                task = head(assignments, rows[idx])
                items = torch.unique(rows[idx])
            else:
                vecs = torch.cat([torch.zeros(1, vecs.shape[1]), vecs])
                task = F.cross_entropy(head(vecs, hist[idx]), tgt[idx] - 1)
                items = torch.unique(torch.cat([hist[idx].flatten(), tgt[idx]]))
            items = items[items > 0] - 1
            loss_items, _, parts = tokenizer.training_step(xt[items], items, None, g)
            recon = torch.as_tensor(parts["recon_loss"])
            loss = task + cfg.content_weight * loss_items if cfg.content_weight else task
            opt.zero_grad()
            loss.backward()
            opt.step()
            w = len(idx) / len(order)
            sums["loss"] += loss.item() * w
            sums["task_loss"] += task.item() * w
            sums["recon_loss"] += float(recon) * w
            sums["rq_loss"] += parts["rq_loss"] * w
        record = {"epoch": epoch, **sums, "soft_entropy": soft_entropy,
                  "soft_entropy_max": float(np.log(tokenizer.config.codebook_size)), "seconds": time.perf_counter() - t0}
        history.append(record)
        if on_epoch:
            on_epoch(epoch, record)
    tokenizer.eval()
    tokenizer.stage = "stage2-soft-indexing"
    log.info("soft-indexing fine-tuning: %d epochs, task loss %.4f", cfg.epochs, history[-1]["task_loss"])
    return history
