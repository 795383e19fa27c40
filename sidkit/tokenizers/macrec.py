"""MACRec (method ``macrec``)

Exactly two views (modalities), one expert each, decoded from their own latent [V-code].
Cross-modal residual contrast from level ``contrast_start_level`` (default 2, i.e. the 3rd
level, as the paper says; the public script starts at 0): for view a's residual entering a
level, the positive is a random in-batch item in the same k-means cluster of the *other* view
(``pseudo_label_clusters``, 512 in the paper, capped at n/4), else the item itself; in-batch
InfoNCE on L2-normalised residuals, temperature 0.1 [V-code]. Following the paper's formula,
the term is added per level and averaged over levels with the VQ loss, weight ``contrast``
0.1 (the public code ignores its CLI weights and uses 1.0) [V-code]. Symmetric InfoNCE
between the two quantised latents, weight ``align`` 0.001 [V-code]. Items missing a view are
left out of every term that needs it.

What is taken from the paper and what is our reconstruction is tagged as in
``../shared/docs/methods.md``: [V] verified, [INF] our choice, exposed in config. The shared
architecture (experts, views, losses): sidkit.tokenizers.multi_expert.
"""

from __future__ import annotations

import torch

from sidkit.errors import ConfigError
from sidkit.quantise.kmeans import kmeans
from sidkit.tokenizers.base import register
from sidkit.tokenizers.multi_expert import ExpertSpec, MultiExpertTokenizer, info_nce


@register
class MACRecTokenizer(MultiExpertTokenizer):
    method = "macrec"
    READS = MultiExpertTokenizer.READS | {"temperature", "contrast_start_level", "pseudo_label_clusters"}
    DEFAULT_WEIGHTS = {"contrast": 0.1, "align": 0.001}

    def __init__(self, config, input_dim, view_dims=None):
        super().__init__(config, input_dim, view_dims)
        self.labels: dict[str, torch.Tensor] = {}

    def expert_specs(self):
        views = tuple(self.config.input_views)
        if len(views) != 2:
            raise ConfigError(f"macrec quantises exactly two views (modalities) in parallel; got {list(views)}")
        return [ExpertSpec(v, (v,), "specific") for v in views]

    def decoder_sources(self, view):
        return [view]

    def prepare(self, x, context, g):
        """k-means pseudo-labels per view (items without the view get -1)."""
        xv = self.split(x)
        masks = self.present(xv)
        for i, (v, t) in enumerate(xv.items()):
            m = masks[v]
            labels = torch.full((len(t),), -1, dtype=torch.long)
            if m.sum() >= 2:
                k = int(min(self.config.pseudo_label_clusters, max(2, int(m.sum()) // 4)))
                centroids = kmeans(t[m], k, seed=self.config.seed + 31 * (i + 1), iters=self.config.kmeans_iters)
                labels[m] = torch.cdist(t[m], centroids).argmin(1)
            self.labels[v] = labels

    def _positives(self, labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """For each row, a random other row with the same label, else itself (-1 never matches)."""
        n = len(labels)
        pos = torch.arange(n)
        same = (labels[:, None] == labels[None, :]) & (labels[:, None] >= 0)
        same.fill_diagonal_(False)
        has = same.any(1)
        if has.any():
            scores = torch.rand(n, n, generator=g, device="cpu").to(same.device) * same
            pos[has] = scores[has].argmax(1)
        return pos

    def extra_losses(self, xv, masks, z, outs, idx, context, g):
        out: dict[str, torch.Tensor] = {}
        views = list(self.view_dims)
        both = masks[views[0]] & masks[views[1]]
        if self.weights["contrast"] and self.labels:
            per_view = []
            for a, b in ((views[0], views[1]), (views[1], views[0])):
                keep = masks[a] & (self.labels[b][idx] >= 0)
                if keep.sum() < 2:
                    continue
                pos = self._positives(self.labels[b][idx][keep], g)
                levels = []
                for l, r in enumerate(outs[a].residuals):
                    if l >= self.config.contrast_start_level:
                        rk = r[keep]
                        levels.append(info_nce(rk, rk, self.config.temperature, pos).mean())
                    else:
                        levels.append(torch.zeros(()))
                per_view.append(torch.stack(levels).mean())  # mean over levels, as in the paper's formula
            if per_view:
                out["contrast"] = torch.stack(per_view).sum()
        if self.weights["align"] and both.sum() > 1:
            qa, qb = outs[views[0]].quantised[both], outs[views[1]].quantised[both]
            t = self.config.temperature
            out["align"] = 0.5 * (info_nce(qa, qb, t).mean() + info_nce(qb, qa, t).mean())
        return out
