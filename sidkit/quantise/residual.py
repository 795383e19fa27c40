"""The residual quantisation container shared by every tokenizer.

``r_0 = z``; at level ``l`` the level quantiser picks ``c_l`` for ``r_l`` and
``r_{l+1} = r_l - e_{l, c_l}``. The quantised latent is ``sum_l e_{l, c_l}``. The
per-level losses are averaged over levels (as in the LETTER/MACRec code lineage).
Levels are pluggable modules (see :mod:`sidkit.quantise.levels`), so RQ-VAE,
RQ-KMeans and the paper tokenizers differ only in the parts they plug in.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn


class RQOutput(NamedTuple):
    codes: torch.Tensor           # (batch, n_levels) int64
    quantised: torch.Tensor       # (batch, dim)
    loss: torch.Tensor            # scalar, mean of per-level losses
    residuals: list[torch.Tensor]  # n_levels tensors (batch, dim): the residual entering each level
    distances: torch.Tensor       # (batch, n_levels, K): squared distance of each level's residual to each code
    level_quantised: list[torch.Tensor]  # n_levels tensors (batch, dim): each level's (gradient-carrying) code vector


class ResidualQuantiser(nn.Module):
    def __init__(self, levels: Sequence[nn.Module]):
        super().__init__()
        if not levels:
            raise ValueError("a residual quantiser needs at least one level")
        self.levels = nn.ModuleList(levels)

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def codebook_sizes(self) -> list[int]:
        return [lvl.codebook_size for lvl in self.levels]

    def forward(self, z: torch.Tensor) -> RQOutput:
        r = z
        quantised = torch.zeros_like(z)
        codes, losses, residuals, dists, per_level = [], [], [], [], []
        for level in self.levels:
            residuals.append(r)
            out = level(r)
            codes.append(out.codes)
            losses.append(out.loss)
            dists.append(out.distances)
            per_level.append(out.quantised)
            quantised = quantised + out.quantised
            # the next residual keeps its gradient path to the encoder (later levels' commitment
            # and any residual-level loss reach it); code vectors themselves are not moved by it
            r = r - out.quantised.detach()
        return RQOutput(torch.stack(codes, 1), quantised, torch.stack(losses).mean(), residuals,
                        torch.stack(dists, 1), per_level)

    @torch.no_grad()
    def init_levels(self, z: torch.Tensor, seed: int, iters: int = 50) -> None:
        """k-means initialise level by level on the residuals of ``z`` (seeded per level)."""
        r = z.detach().float()
        for i, level in enumerate(self.levels):
            level.init_from(r, seed=seed * 1000 + i, iters=iters)
            codes = level(r).codes
            r = r - level.codebook[codes]

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """The quantised latent for given codes (batch, n_levels)."""
        return sum(level.codebook[codes[:, i]] for i, level in enumerate(self.levels))
