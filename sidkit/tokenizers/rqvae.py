"""RQ-VAE tokenizer (TIGER): MLP encoder -> residual VQ (L levels x K codes) -> MLP decoder.

Loss: ``MSE(x, x_hat) + mean_l VQ_l`` with ``VQ_l = ||sg[r_l] - e||^2 + beta ||r_l - sg[e]||^2``
(beta = 0.25). Codebooks are k-means initialised (seeded) on the encoder outputs before
training. Codes unused during an epoch are re-seeded from residuals of a random batch
(``dead_code_reset``), the standard remedy for codebook collapse. The checkpoint kept is
``select_by``: the lowest collision rate (ties: lowest loss) as in LETTER/MACRec, or the last
epoch as in TIGER. Our RQ-VAE configs use ``last``: here collisions rise while the codes
spread, so lowest-collision selection kept the first, barely trained evaluation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sidkit.quantise import CodebookLevel, ResidualQuantiser
from sidkit.tokenizers.base import TokenizerConfig, register
from sidkit.tokenizers.trainer import GradientTokenizer
from sidkit.utils import torch_generator


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
class RQVAETokenizer(GradientTokenizer):
    method = "rqvae"
    READS = GradientTokenizer.READS | {"latent_dim", "hidden_dims", "dropout", "beta", "gradient", "sinkhorn_eps_last_level"}

    def __init__(self, config: TokenizerConfig, input_dim: int, view_dims: dict[str, int] | None = None):
        super().__init__(config, input_dim, view_dims)
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

    def quantisers(self):
        return [self.rq]

    def init_codebooks(self, x, context):
        c = self.config
        g = torch_generator(c.seed + 1)
        sample = x[torch.randperm(len(x), generator=g, device="cpu")[: max(c.batch_size, 20 * c.codebook_size)]]
        self.rq.init_levels(self.encoder(sample), seed=c.seed, iters=c.kmeans_iters)

    def training_step(self, xb, idx, context, g):
        x_hat, out = self(xb)
        recon = F.mse_loss(x_hat.float(), xb)
        return recon + out.loss, out.codes, {"recon_loss": recon.item(), "rq_loss": out.loss.item()}

    def latent_residuals(self, x):
        return [self.rq(self.encoder(x)).residuals]
