"""The shared training loop of gradient-trained tokenizers (RQ-VAE and the multi-expert family).

A subclass provides ``init_codebooks`` (seeded k-means on its latents), ``training_step``
(loss, codes and named loss parts for a batch) and ``latent_residuals`` (the residuals
entering each level of each residual quantiser, for re-seeding dead codes). The loop
handles seeded shuffling, optional bf16 autocast, per-epoch codebook health, dead-code
reset, periodic evaluation and checkpoint selection by collision rate.
"""

from __future__ import annotations

import copy
import time
from typing import Callable

import numpy as np
import torch

from sidkit import distributed
from sidkit.evaluation.sid_quality import collision_rate, entropy, level_counts
from sidkit.quantise import ResidualQuantiser
from sidkit.tokenizers.base import FitContext, Tokenizer
from sidkit.devices import on_device, to_device
from sidkit.utils import log, progress, torch_generator


class GradientTokenizer(Tokenizer):
    READS = frozenset({"epochs", "batch_size", "lr", "weight_decay", "eval_every", "select_by", "bf16", "kmeans_init",
                       "kmeans_iters", "dead_code_reset"})

    def quantisers(self) -> list[ResidualQuantiser]:
        raise NotImplementedError

    def init_codebooks(self, x: torch.Tensor, context: FitContext | None) -> None:
        raise NotImplementedError

    def prepare(self, x: torch.Tensor, context: FitContext | None, g: torch.Generator) -> None:
        """Hook before training (e.g. pseudo-labels); default: nothing."""

    def training_step(self, xb: torch.Tensor, idx: torch.Tensor, context: FitContext | None,
                      g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """(loss, codes (batch, total levels), loss parts) for one batch."""
        raise NotImplementedError

    def latent_residuals(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        raise NotImplementedError

    def fit(self, x: np.ndarray, on_epoch: Callable[[int, dict], None] | None = None,
            context: FitContext | None = None) -> list[dict]:
        """Train on ``SIDKIT_DEVICE`` (sidkit.devices): the items' vectors and the weights go there, the data
        order and the code counts stay on the CPU; the trained tokenizer is left on the CPU."""
        with on_device() as device:
            history = self.to(device)._fit(x, on_epoch, context)
        self.cpu()
        return history

    def _fit(self, x: np.ndarray, on_epoch: Callable[[int, dict], None] | None,
             context: FitContext | None) -> list[dict]:
        c = self.config
        g = torch_generator(c.seed)
        xt = to_device(np.asarray(x, dtype=np.float32))
        n = len(xt)
        if n == 0:
            raise ValueError("cannot train a tokenizer on zero items")
        self.prepare(xt, context, g)
        if c.kmeans_init:
            with torch.no_grad():
                self.init_codebooks(xt, context)
        opt = torch.optim.AdamW(self.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        sizes = self.codebook_sizes
        history: list[dict] = []
        best_key, best_state, best_epoch, evaluations = None, None, None, 0
        for epoch in progress(range(c.epochs), desc=f"{self.method} tokenizer", unit="epoch"):
            t0 = time.perf_counter()
            self.train()
            order = torch.randperm(n, generator=g, device="cpu")
            counts = [torch.zeros(k, dtype=torch.long, device="cpu") for k in sizes]
            epoch_codes = torch.zeros(n, len(sizes), dtype=torch.long, device="cpu")
            sums: dict[str, float] = {}
            for start in range(0, n, c.batch_size):
                batch = order[start:start + c.batch_size]
                idx = distributed.shard(batch)   # under torch.distributed: this rank's share
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=c.bf16):
                    loss, codes, parts = self.training_step(xt[idx], idx, context, g)
                opt.zero_grad()
                # batch-mean losses: weight this rank's share so the averaged gradient is the global batch's
                (loss.float() * (len(idx) * distributed.world_size() / len(batch))).backward()
                distributed.average_gradients(self.parameters())
                opt.step()
                codes = codes.cpu()
                for l, k in enumerate(sizes):
                    counts[l] += torch.bincount(codes[:, l], minlength=k)[:k]
                epoch_codes[idx] = codes
                w = len(idx) / n
                for key, val in {"loss": loss.item(), **parts}.items():
                    sums[key] = sums.get(key, 0.0) + val * w
            if distributed.active():  # every rank sees the whole epoch's code usage
                counts = [distributed.all_sum(cnt) for cnt in counts]
                mask = torch.zeros(n, dtype=torch.long, device="cpu")
                mask[torch.cat([distributed.shard(order[s:s + c.batch_size]) for s in range(0, n, c.batch_size)])] = 1
                epoch_codes = distributed.all_sum(epoch_codes * mask[:, None])
            reset = self._reset_dead_codes(xt, counts, g) if c.dead_code_reset and epoch < c.epochs - 1 else 0
            np_counts = [cnt.numpy() for cnt in counts]
            record = {"epoch": epoch, **sums,
                      "collision_rate": collision_rate(epoch_codes.numpy()),
                      "utilization": [float((cnt > 0).mean()) for cnt in np_counts],
                      "perplexity": [float(np.exp(entropy(cnt))) for cnt in np_counts],
                      "dead_codes_reset": int(reset), "seconds": time.perf_counter() - t0}
            if (epoch + 1) % c.eval_every == 0 or epoch == c.epochs - 1:
                enc = self.encode(xt.cpu().numpy())
                record["eval_collision_rate"] = collision_rate(enc.codes)
                record["eval_utilization"] = [float((level_counts(enc.codes[:, l], k) > 0).mean())
                                              for l, k in enumerate(sizes)]
                evaluations += 1
                key = (record["eval_collision_rate"], record["loss"]) if c.select_by == "collision" else (0.0, -epoch)
                if best_key is None or key < best_key:
                    best_key, best_epoch, best_collision = key, epoch, record["eval_collision_rate"]
                    # "last" keeps the final weights as they are; only "collision" may need an earlier state
                    best_state = copy.deepcopy(self.state_dict()) if c.select_by == "collision" else None
                    record["selected"] = True
            history.append(record)
            if on_epoch:
                on_epoch(epoch, record)
        if best_state is not None:
            self.load_state_dict(best_state)
        self.eval()
        if best_epoch is not None:
            log.info("%s trained: %d epochs, kept epoch %d (select_by %s), collision rate %.4f", self.method,
                     c.epochs, best_epoch, c.select_by, best_collision)
            if c.select_by == "collision" and evaluations >= 3 and best_epoch == c.eval_every - 1:
                log.warning("%s: the lowest collision rate was at the first evaluation (epoch %d of %d), so the "
                            "codes kept are from a barely trained model; collisions rose as training went on. "
                            "Set `select_by: last` to keep the trained model.", self.method, best_epoch, c.epochs)
        return history

    @torch.no_grad()
    def _reset_dead_codes(self, xt: torch.Tensor, counts: list[torch.Tensor], g: torch.Generator) -> int:
        dead_total = sum(int((cnt == 0).sum()) for cnt in counts)
        if dead_total == 0:
            return 0
        self.eval()
        sample = xt[torch.randperm(len(xt), generator=g, device="cpu")[: max(self.config.batch_size, 1024)]]
        levels = [lvl for rq in self.quantisers() for lvl in rq.levels]
        residuals = [r for per_rq in self.latent_residuals(sample) for r in per_rq]
        for level, cnt, r in zip(levels, counts, residuals):
            dead = torch.nonzero(cnt == 0).squeeze(1)
            if len(dead):
                pick = torch.randint(len(r), (len(dead),), generator=g, device="cpu")
                level.codebook[dead.to(level.codebook.device)] = r[pick].float()
        self.train()
        return dead_total
