"""RQ-KMeans tokenizer: residual k-means directly on the item embedding (no encoder).

Level l runs seeded k-means (k-means++ then Lloyd) on the residuals left by levels
< l over the whole catalogue; ``kmeans_balanced`` makes each Lloyd step a Sinkhorn-balanced
assignment (OneRec's balanced RQ-KMeans), which keeps later levels from collapsing when
the catalogue is small relative to the codebook (MovieLens-100k: 1,682 items, 256 codes). There is no gradient training; "reconstruction" is the
sum of the chosen centroids, compared with the input embedding.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from sidkit.devices import on_device, to_device
from sidkit.evaluation.sid_quality import collision_rate, entropy, level_counts
from sidkit.quantise import KMeansLevel, ResidualQuantiser
from sidkit.tokenizers.base import Tokenizer, TokenizerConfig, register


@register
class RQKMeansTokenizer(Tokenizer):
    method = "rqkmeans"
    READS = frozenset({"kmeans_iters", "kmeans_balanced"})

    def __init__(self, config: TokenizerConfig, input_dim: int, view_dims: dict[str, int] | None = None):
        super().__init__(config, input_dim, view_dims)
        self.rq = ResidualQuantiser([KMeansLevel(config.codebook_size, input_dim, balanced=config.kmeans_balanced)
                                     for _ in range(config.levels)])

    def _encode(self, x):
        out = self.rq(x)
        return out.codes, out.distances

    def reconstruct(self, x):
        return self.rq(x).quantised

    def fit(self, x: np.ndarray, on_epoch: Callable[[int, dict], None] | None = None, context=None) -> list[dict]:
        """k-means level by level on ``SIDKIT_DEVICE`` (sidkit.devices); the codebooks are left on the CPU."""
        t0 = time.perf_counter()
        with on_device() as device:
            self.to(device).rq.init_levels(to_device(np.asarray(x, dtype=np.float32)), seed=self.config.seed,
                                           iters=self.config.kmeans_iters)
        self.cpu()
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        enc = self.encode(xt.numpy())
        counts = [level_counts(enc.codes[:, l], k) for l, k in enumerate(self.codebook_sizes)]
        record = {"epoch": 0, "loss": self.reconstruction_loss(xt.numpy()),
                  "recon_loss": self.reconstruction_loss(xt.numpy()), "rq_loss": 0.0,
                  "collision_rate": collision_rate(enc.codes),
                  "utilization": [float((c > 0).mean()) for c in counts],
                  "perplexity": [float(np.exp(entropy(c))) for c in counts],
                  "seconds": time.perf_counter() - t0}
        if on_epoch:
            on_epoch(0, record)
        return [record]
