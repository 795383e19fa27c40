"""RQ-VAE tokenizer (TIGER): MLP encoder -> residual VQ (L levels x K codes) -> MLP decoder.

Loss: ``MSE(x, x_hat) + mean_l VQ_l`` with ``VQ_l = ||sg[r_l] - e||^2 + beta ||r_l - sg[e]||^2``
(beta = 0.25). Codebooks are k-means initialised (seeded) on the encoder outputs before
training. Codes unused during an epoch are re-seeded from residuals of a random batch
(``dead_code_reset``), the standard remedy for codebook collapse. The checkpoint kept is
the one with the lowest collision rate (ties: lowest loss), as in LETTER/MACRec.
"""

from __future__ import annotations

import copy
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sidkit.evaluation.sid_quality import collision_rate, entropy, level_counts
from sidkit.quantise import CodebookLevel, ResidualQuantiser
from sidkit.tokenizers.base import Tokenizer, TokenizerConfig, register
from sidkit.utils import log, progress, torch_generator


def mlp(dims: list[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
    for m in layers:
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)
    return nn.Sequential(*layers)


@register
class RQVAETokenizer(Tokenizer):
    method = "rqvae"

    def __init__(self, config: TokenizerConfig, input_dim: int):
        super().__init__(config, input_dim)
        c = config
        self.encoder = mlp([input_dim, *c.hidden_dims, c.latent_dim], c.dropout)
        self.decoder = mlp([c.latent_dim, *reversed(c.hidden_dims), input_dim], c.dropout)
        self.rq = ResidualQuantiser([
            CodebookLevel(c.codebook_size, c.latent_dim, beta=c.beta, gradient=c.gradient,
                          sinkhorn_eps=c.sinkhorn_eps_last_level if l == c.levels - 1 else 0.0)
            for l in range(c.levels)
        ])

    def forward(self, x: torch.Tensor):
        out = self.rq(self.encoder(x))
        return self.decoder(out.quantised), out

    def _encode(self, x):
        out = self.rq(self.encoder(x))
        return out.codes, out.distances

    def reconstruct(self, x):
        return self.decoder(self.rq(self.encoder(x)).quantised)

    def fit(self, x: np.ndarray, on_epoch: Callable[[int, dict], None] | None = None) -> list[dict]:
        c = self.config
        g = torch_generator(c.seed)
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        n = len(xt)
        if n == 0:
            raise ValueError("cannot train a tokenizer on zero items")
        opt = torch.optim.AdamW(self.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        if c.kmeans_init:
            with torch.no_grad():
                sample = xt[torch.randperm(n, generator=g)[: max(c.batch_size, 20 * c.codebook_size)]]
                self.rq.init_levels(self.encoder(sample), seed=c.seed, iters=c.kmeans_iters)
        history: list[dict] = []
        best_key, best_state = None, None
        for epoch in progress(range(c.epochs), desc=f"{self.method} tokenizer", unit="epoch"):
            t0 = time.perf_counter()
            self.train()
            order = torch.randperm(n, generator=g)
            counts = [torch.zeros(k, dtype=torch.long) for k in self.codebook_sizes]
            epoch_codes = torch.empty(n, c.levels, dtype=torch.long)
            sums = {"loss": 0.0, "recon_loss": 0.0, "rq_loss": 0.0}
            for start in range(0, n, c.batch_size):
                idx = order[start:start + c.batch_size]
                xb = xt[idx]
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=c.bf16):
                    x_hat, out = self(xb)
                recon = F.mse_loss(x_hat.float(), xb)
                loss = recon + out.loss
                opt.zero_grad()
                loss.backward()
                opt.step()
                for l in range(c.levels):
                    counts[l] += torch.bincount(out.codes[:, l], minlength=self.codebook_sizes[l])
                epoch_codes[idx] = out.codes
                w = len(idx) / n
                sums["loss"] += loss.item() * w
                sums["recon_loss"] += recon.item() * w
                sums["rq_loss"] += out.loss.item() * w
            reset = self._reset_dead_codes(xt, counts, g) if c.dead_code_reset and epoch < c.epochs - 1 else 0
            np_counts = [cnt.numpy() for cnt in counts]
            record = {
                "epoch": epoch, **sums,
                "collision_rate": collision_rate(epoch_codes.numpy()),
                "utilization": [float((cnt > 0).mean()) for cnt in np_counts],
                "perplexity": [float(np.exp(entropy(cnt))) for cnt in np_counts],
                "dead_codes_reset": int(reset),
                "seconds": time.perf_counter() - t0,
            }
            if (epoch + 1) % c.eval_every == 0 or epoch == c.epochs - 1:
                enc = self.encode(xt.numpy())
                record["eval_collision_rate"] = collision_rate(enc.codes)
                record["eval_utilization"] = [float((level_counts(enc.codes[:, l], k) > 0).mean())
                                              for l, k in enumerate(self.codebook_sizes)]
                key = (record["eval_collision_rate"], record["loss"]) if c.select_by == "collision" else (0.0, -epoch)
                if best_key is None or key < best_key:
                    best_key, best_state = key, copy.deepcopy(self.state_dict())
                    record["selected"] = True
            history.append(record)
            if on_epoch:
                on_epoch(epoch, record)
        if best_state is not None:
            self.load_state_dict(best_state)
        self.eval()
        log.info("%s trained: %d epochs, selected collision rate %.4f", self.method, c.epochs,
                 best_key[0] if best_key else float("nan"))
        return history

    @torch.no_grad()
    def _reset_dead_codes(self, xt: torch.Tensor, counts: list[torch.Tensor], g: torch.Generator) -> int:
        dead_total = sum(int((cnt == 0).sum()) for cnt in counts)
        if dead_total == 0:
            return 0
        self.eval()
        sample = xt[torch.randperm(len(xt), generator=g)[: max(self.config.batch_size, 1024)]]
        residuals = self.rq(self.encoder(sample)).residuals
        for level, cnt, r in zip(self.rq.levels, counts, residuals):
            dead = torch.nonzero(cnt == 0).squeeze(1)
            if len(dead):
                pick = torch.randint(len(r), (len(dead),), generator=g)
                level.codebook[dead] = r[pick].float()
        self.train()
        return dead_total
