"""ADA-SID (method ``adasid``)

Views split into content (all but ``behaviour``) and behaviour. Experts: shared (content and
behaviour each projected into one latent space, the shared latent being their mean; content
only for items without behaviour), content-specific and behaviour-specific [V-2nd]. Adaptive
alignment: in-batch InfoNCE between the shared expert's content and behaviour projections,
per item weighted by w = sigmoid(a (log(1 + n) - mu)), n = training interactions, mu = median
(``richness_slope``, ``richness_center``; ``richness_aware: false`` gives w = 1) [INF];
weight ``align`` (default 0.1). Dynamic behavioural router: g = ReLU(W [b; c]) gives one weight
per behavioural SID position; the behaviour view is decoded from the shared latent plus the
g-weighted behavioural code vectors, so the gate learns which behavioural codes carry signal;
L1 penalty ``sparse`` (default 1e-3) and optional ``router_top_k`` [INF]. The gate is exported
with the SID table (``weight_<position>``). Orthogonality as in MMQ (default 0.1).

What is taken from the paper and what is our reconstruction is tagged as in
``../shared/docs/methods.md``: [V] verified, [INF] our choice, exposed in config. The shared
architecture (experts, views, losses): sidkit.tokenizers.multi_expert.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sidkit.errors import ConfigError
from sidkit.tokenizers.base import register
from sidkit.tokenizers.multi_expert import ExpertSpec, MultiExpertTokenizer, SharedBehaviourContentExpert, info_nce


@register
class ADASIDTokenizer(MultiExpertTokenizer):
    method = "adasid"
    READS = MultiExpertTokenizer.READS | {"n_shared_experts", "n_specific_experts", "temperature", "richness_aware",
                                          "richness_slope", "richness_center", "router", "router_top_k"}
    DEFAULT_WEIGHTS = {"align": 0.1, "sparse": 1e-3, "orthogonal": 0.1}
    BEHAVIOUR = "behaviour"

    def __init__(self, config, input_dim, view_dims=None):
        super().__init__(config, input_dim, view_dims)
        n_slots = config.levels * config.n_specific_experts
        content_dim = sum(d for v, d in self.view_dims.items() if v != self.BEHAVIOUR)
        self.router = nn.Linear(content_dim + self.view_dims[self.BEHAVIOUR], n_slots) if config.router else None
        if self.router is not None:  # start with every gate open (1): the L1 term then closes the useless ones
            nn.init.normal_(self.router.weight, std=0.01)
            nn.init.ones_(self.router.bias)
        self.register_buffer("richness_mu", torch.tensor(float("nan")))

    @property
    def content_views(self) -> tuple[str, ...]:
        return tuple(v for v in self.config.input_views if v != self.BEHAVIOUR)

    def expert_specs(self):
        if self.BEHAVIOUR not in self.config.input_views or not self.content_views:
            raise ConfigError("adasid needs the 'behaviour' view and at least one content view "
                              f"(e.g. input_views: [text, behaviour]); got {list(self.config.input_views)}")
        c = self.config
        specs = [ExpertSpec(f"shared{j}", (*self.content_views, self.BEHAVIOUR), "shared") for j in range(c.n_shared_experts)]
        specs += [ExpertSpec(f"content{j}", self.content_views, "specific") for j in range(c.n_specific_experts)]
        specs += [ExpertSpec(f"behaviour{j}", (self.BEHAVIOUR,), "specific") for j in range(c.n_specific_experts)]
        return specs

    def build_expert(self, spec):
        if spec.role == "shared":
            return SharedBehaviourContentExpert([self.view_dims[v] for v in self.content_views],
                                                self.view_dims[self.BEHAVIOUR], self.config, self.config.levels)
        return super().build_expert(spec)

    def decoder_sources(self, view):
        side = "behaviour" if view == self.BEHAVIOUR else "content"
        return [s.name for s in self.specs if s.role == "shared" or s.name.startswith(side)]

    def gates(self, xv) -> torch.Tensor | None:
        if self.router is None:
            return None
        content = torch.cat([xv[v] for v in self.content_views], 1)
        g = F.relu(self.router(torch.cat([content, xv[self.BEHAVIOUR]], 1)))
        k = self.config.router_top_k
        if k is not None and k < g.shape[1]:
            top = torch.topk(g, k, dim=1).indices
            g = g * torch.zeros_like(g).scatter_(1, top, 1.0)
        return g

    def decoder_input(self, view, outs, xv, masks):
        if view != self.BEHAVIOUR or self.router is None:
            return super().decoder_input(view, outs, xv, masks)
        g = self.gates(xv)
        total = sum(outs[s.name].quantised for s in self.specs if s.role == "shared")
        slot = 0
        for s in self.specs:
            if s.name.startswith("behaviour"):
                for q in outs[s.name].level_quantised:
                    total = total + g[:, slot:slot + 1] * q
                    slot += 1
        return total

    def prepare(self, x, context, g):
        counts = None if context is None else context.item_counts
        if counts is not None:
            mu = self.config.richness_center
            self.richness_mu.fill_(float(np.median(np.log1p(counts))) if mu is None else float(mu))

    def richness(self, idx, context) -> torch.Tensor:
        if not self.config.richness_aware or context is None or context.item_counts is None:
            return torch.ones(len(idx))
        n = torch.as_tensor(np.asarray(context.item_counts, dtype=np.float32))[idx]
        return torch.sigmoid(self.config.richness_slope * (torch.log1p(n) - self.richness_mu))

    def extra_losses(self, xv, masks, z, outs, idx, context, g):
        out: dict[str, torch.Tensor] = {}
        has_b = masks[self.BEHAVIOUR]
        if self.weights["align"] and has_b.sum() > 1:
            w = self.richness(idx, context)[has_b]
            terms = []
            for s in self.specs:
                if s.role == "shared":
                    zc, zb = self.experts[s.name].projections([xv[v][has_b] for v in self.content_views],
                                                              xv[self.BEHAVIOUR][has_b])
                    ce = 0.5 * (info_nce(zc, zb, self.config.temperature) + info_nce(zb, zc, self.config.temperature))
                    terms.append((w * ce).mean())
            out["align"] = torch.stack(terms).mean()
        if self.router is not None and self.weights["sparse"]:
            out["sparse"] = self.gates(xv).abs().sum(1).mean()
        if self.weights["orthogonal"]:
            out["orthogonal"] = self.orthogonality(z)
        return out

    @torch.no_grad()
    def item_weights(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.router is None:
            return {}
        self.eval()
        g = self.gates(self.split(torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device))).cpu().numpy()
        first = self.config.levels * (self.config.n_shared_experts + self.config.n_specific_experts)
        return {f"weight_{first + j}": g[:, j] for j in range(g.shape[1])}
