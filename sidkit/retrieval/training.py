"""Training the generator: windows over the training split, the learning-rate schedule, the weight
average, early stopping on validation Recall@10 of beam-searched rankings.
"""

from __future__ import annotations

import contextlib
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sidkit import distributed
from sidkit.devices import built_on_cpu, runs_on_device
from sidkit.precision import autocast
from sidkit.retrieval.config import IGNORE, N_SPECIAL, GeneratorConfig, SIDVocabulary
from sidkit.retrieval.decoding import generate_ranked, view_indexes
from sidkit.retrieval.item_model import ItemHistoryGenerator
from sidkit.retrieval.models import SIDGenerator, build_generator, max_tokens, pad_left, sequences_to_tokens
from sidkit.utils import log, progress, torch_generator


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


@runs_on_device
def train_generator(train_sequences: list[list[int]], sids: np.ndarray, cfg: GeneratorConfig,
                    valid: tuple[list[list[int]], list[int]] | None = None, on_epoch=None,
                    views: list[list[int]] | None = None,
                    weights: np.ndarray | None = None) -> tuple[SIDGenerator, SIDVocabulary, list[dict]]:
    """Train on item-row sequences (training split only). Early stopping on validation Recall@10.

    ``views`` (SID positions per view, e.g. MACRec's branches) trains the multi-aspect tasks of
    ``cfg.view_tasks`` (+ the implicit alignment) instead of whole-SID next-item prediction.
    ``weights`` (items x SID positions, ADA-SID's router) are read under ``sid_weights: router``.
    Runs on ``SIDKIT_DEVICE`` (sidkit.devices); the model is returned on the CPU."""
    from sidkit.retrieval.metrics import recall_at_k, target_ranks

    torch.manual_seed(cfg.seed)
    g = torch_generator(cfg.seed)
    vocab = SIDVocabulary.from_sids(sids)
    sid_tokens = vocab.tokens(sids)
    max_len = max_tokens(cfg, vocab.length)
    multi_view = bool(views) and len(views) > 1
    model = built_on_cpu(lambda: build_generator(vocab, max_len, cfg, views if multi_view else None, sids, weights))
    compact = isinstance(model, ItemHistoryGenerator)   # per-codebook logits (the token model scores the vocabulary)
    tasks = view_tasks(cfg, len(views)) if multi_view else []
    if multi_view and distributed.active():
        raise ValueError("multi-view (MACRec) generator training runs several forward passes per step; "
                         "it is not supported under DDP -- run it on one process")
    # under torch.distributed: DDP over ranks, each taking its share of every global batch
    net = nn.parallel.DistributedDataParallel(model) if distributed.active() else model
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)  # one kernel, not ~10 ops per tensor
    windows = sequences_to_tokens(training_windows(train_sequences, cfg.max_history), sid_tokens, cfg.max_history + 1)
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
    lengths = torch.tensor([len(w) for w in windows], device="cpu")   # data order: CPU, the same on any device
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
        order = torch.randperm(len(windows), generator=g, device="cpu")
        order = order[torch.argsort(lengths[order], stable=True)]  # similar lengths together, less padding
        batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        total = 0.0
        for bi in torch.randperm(len(batches), generator=g, device="cpu").tolist():
            batch = batches[bi]
            n_targets = sum(len(windows[i]) - 1 for i in batch.tolist())   # the global batch's tokens
            mine = distributed.shard(batch)
            x = pad_left([windows[i] for i in mine.tolist()])
            with autocast(cfg.precision):
                if multi_view:
                    loss = model.multi_view_loss(x, tasks, cfg.implicit_alignment,
                                                  alignment_scope=cfg.implicit_alignment_scope)
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
    return model.cpu(), vocab, history
