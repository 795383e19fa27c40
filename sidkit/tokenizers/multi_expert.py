"""Multi-expert tokenizers: MMQ (stage 1), ADA-SID (MMQ-v2) and MACRec, on one architecture.

An *expert* encodes some input views into a latent and quantises it with its own residual
codebook stack (levels x K codes). An item's SID is the concatenation of the experts' codes
(parallel SIDs, "mixture of quantisation"); collision policies then act on the whole tuple.
Each view has a decoder fed by the sum of the quantised latents of the experts that
reconstruct it. Loss = sum over views of the MSE on items that have the view (missing views
are masked, never imputed) + mean over experts of the VQ losses + the method's own terms,
each with a weight in ``tokenizer.loss_weights`` (0 switches a term off: ablations).

What is taken from the papers and what is our reconstruction is tagged as in
``../shared/docs/methods.md``: [V] verified, [INF] our choice, exposed in config.

MMQ (stage 1, method ``mmq``)
    ``n_specific_experts`` experts per view (view-specific) and ``n_shared_experts`` experts fed
    the concatenation of all views [V-2nd]. Every view is decoded from the sum of all experts'
    quantised latents [INF]. Orthogonal regularisation: mean over (shared, specific) pairs of the
    batch mean of cos^2 between their (pre-quantisation) latents [INF, from the keyword "cosine
    similarity"]; weight ``orthogonal`` (default 0.1).
ADA-SID (method ``adasid``)
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
MACRec (method ``macrec``)
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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sidkit.errors import ConfigError
from sidkit.quantise import CodebookLevel, ResidualQuantiser
from sidkit.quantise.kmeans import kmeans
from sidkit.tokenizers.base import TokenizerConfig, register
from sidkit.tokenizers.rqvae import mlp
from sidkit.tokenizers.trainer import GradientTokenizer
from sidkit.utils import torch_generator


@dataclass(frozen=True)
class ExpertSpec:
    name: str
    views: tuple[str, ...]
    role: str  # "shared" or "specific"


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float, targets: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row InfoNCE of a against all rows of b (positives on the diagonal unless ``targets``)."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    if targets is None:
        targets = torch.arange(len(a))
    return F.cross_entropy(logits.float(), targets, reduction="none")


class Expert(nn.Module):
    def __init__(self, in_dims: list[int], cfg: TokenizerConfig, levels: int):
        super().__init__()
        self.encoder = mlp([sum(in_dims), *cfg.hidden_dims, cfg.latent_dim], cfg.dropout)
        self.rq = ResidualQuantiser([CodebookLevel(cfg.codebook_size, cfg.latent_dim, beta=cfg.beta,
                                                   gradient=cfg.gradient) for _ in range(levels)])

    def latent(self, inputs: list[torch.Tensor], masks: list[torch.Tensor]) -> torch.Tensor:
        return self.encoder(torch.cat(inputs, dim=1))


class SharedBehaviourContentExpert(Expert):
    """ADA-SID's shared expert: content and behaviour projected into one latent space."""

    def __init__(self, content_dims: list[int], behaviour_dim: int, cfg: TokenizerConfig, levels: int):
        super().__init__(content_dims, cfg, levels)
        self.behaviour_encoder = mlp([behaviour_dim, *cfg.hidden_dims, cfg.latent_dim], cfg.dropout)

    def projections(self, content: list[torch.Tensor], behaviour: torch.Tensor):
        return self.encoder(torch.cat(content, dim=1)), self.behaviour_encoder(behaviour)

    def latent(self, inputs, masks):
        zc, zb = self.projections(inputs[:-1], inputs[-1])
        has_b = masks[-1].float().unsqueeze(1)
        return zc * (1 - has_b) + 0.5 * (zc + zb) * has_b


class MultiExpertTokenizer(GradientTokenizer):
    DEFAULT_WEIGHTS: ClassVar[dict[str, float]] = {}

    def __init__(self, config: TokenizerConfig, input_dim: int, view_dims: dict[str, int] | None = None):
        super().__init__(config, input_dim, view_dims)
        if list(self.view_dims) != list(config.input_views):
            raise ConfigError(f"{self.method} needs per-view dims for {list(config.input_views)}, got {self.view_dims}")
        unknown = set(config.loss_weights) - set(self.DEFAULT_WEIGHTS)
        if unknown:
            raise ConfigError(f"unknown loss weight(s) {sorted(unknown)} for {self.method}; "
                              f"known: {sorted(self.DEFAULT_WEIGHTS)}")
        self.weights = {**self.DEFAULT_WEIGHTS, **config.loss_weights}
        self.specs = self.expert_specs()
        self.experts = nn.ModuleDict({s.name: self.build_expert(s) for s in self.specs})
        self.decoders = nn.ModuleDict({v: mlp([config.latent_dim, *reversed(config.hidden_dims), d], config.dropout)
                                       for v, d in self.view_dims.items()})

    # -- structure -----------------------------------------------------------
    def expert_specs(self) -> list[ExpertSpec]:
        raise NotImplementedError

    def decoder_sources(self, view: str) -> list[str]:
        return [s.name for s in self.specs]

    def build_expert(self, spec: ExpertSpec) -> Expert:
        return Expert([self.view_dims[v] for v in spec.views], self.config, self.config.levels)

    @property
    def codebook_sizes(self) -> list[int]:
        return [self.config.codebook_size] * (self.config.levels * len(self.specs))

    def describe(self) -> dict:
        return {**super().describe(), "experts": [f"{s.name}({'+'.join(s.views)})" for s in self.specs],
                "loss_weights": self.weights}

    def quantisers(self):
        return [e.rq for e in self.experts.values()]

    # -- forward -------------------------------------------------------------
    def split(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out, start = {}, 0
        for v, d in self.view_dims.items():
            out[v] = x[:, start:start + d]
            start += d
        return out

    @staticmethod
    def present(xv: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """An item has a view unless its block is all zeros (how ItemEmbeddings.matrix marks masks)."""
        return {v: t.abs().sum(1) > 0 for v, t in xv.items()}

    def latents(self, xv, masks) -> dict[str, torch.Tensor]:
        return {s.name: self.experts[s.name].latent([xv[v] for v in s.views], [masks[v] for v in s.views])
                for s in self.specs}

    def forward(self, x: torch.Tensor):
        xv = self.split(x)
        masks = self.present(xv)
        z = self.latents(xv, masks)
        outs = {name: self.experts[name].rq(z[name]) for name in z}
        recon = {v: self.decoders[v](self.decoder_input(v, outs, xv, masks)) for v in self.view_dims}
        return xv, masks, z, outs, recon

    def decoder_input(self, view, outs, xv, masks) -> torch.Tensor:
        return sum(outs[n].quantised for n in self.decoder_sources(view))

    def _encode(self, x):
        _, _, _, outs, _ = self.forward(x)
        codes = torch.cat([outs[s.name].codes for s in self.specs], 1)
        dists = torch.cat([outs[s.name].distances for s in self.specs], 1)
        return codes, dists

    def reconstruct(self, x):
        *_, recon = self.forward(x)
        return torch.cat([recon[v] for v in self.view_dims], 1)

    def latent_residuals(self, x):
        xv = self.split(x)
        z = self.latents(xv, self.present(xv))
        return [self.experts[s.name].rq(z[s.name]).residuals for s in self.specs]

    def init_codebooks(self, x, context):
        c = self.config
        g = torch_generator(c.seed + 1)
        sample = x[torch.randperm(len(x), generator=g)[: max(c.batch_size, 20 * c.codebook_size)]]
        xv = self.split(sample)
        z = self.latents(xv, self.present(xv))
        for i, s in enumerate(self.specs):
            self.experts[s.name].rq.init_levels(z[s.name], seed=c.seed + 7919 * (i + 1), iters=c.kmeans_iters)

    # -- training ------------------------------------------------------------
    def training_step(self, xb, idx, context, g):
        xv, masks, z, outs, recon = self.forward(xb)
        parts: dict[str, torch.Tensor] = {}
        rec = 0.0
        for v in self.view_dims:
            m = masks[v]
            if m.any():
                term = F.mse_loss(recon[v][m].float(), xv[v][m])
                parts[f"recon_{v}"] = term
                rec = rec + term
        rq = torch.stack([o.loss for o in outs.values()]).mean()
        extra = self.extra_losses(xv, masks, z, outs, idx, context, g)
        loss = rec + rq
        for name, value in extra.items():
            parts[name] = value
            loss = loss + self.weights[name] * value
        codes = torch.cat([outs[s.name].codes for s in self.specs], 1)
        logged = {k: float(v.detach()) for k, v in parts.items()}
        logged.update(recon_loss=float(rec.detach()) if torch.is_tensor(rec) else 0.0, rq_loss=float(rq.detach()))
        return loss, codes, logged

    def extra_losses(self, xv, masks, z, outs, idx, context, g) -> dict[str, torch.Tensor]:
        return {}

    def orthogonality(self, z: dict[str, torch.Tensor]) -> torch.Tensor:
        shared = [s.name for s in self.specs if s.role == "shared"]
        specific = [s.name for s in self.specs if s.role == "specific"]
        terms = [F.cosine_similarity(z[a], z[b], dim=-1).pow(2).mean() for a in shared for b in specific]
        return torch.stack(terms).mean() if terms else torch.zeros(())


@register
class MMQTokenizer(MultiExpertTokenizer):
    method = "mmq"
    DEFAULT_WEIGHTS = {"orthogonal": 0.1}

    def expert_specs(self):
        views = tuple(self.config.input_views)
        if len(views) < 2:
            raise ConfigError(f"mmq needs at least two views (shared and specific experts); got {list(views)}")
        specs = [ExpertSpec(f"shared{j}", views, "shared") for j in range(self.config.n_shared_experts)]
        specs += [ExpertSpec(f"{v}{j}", (v,), "specific") for v in views for j in range(self.config.n_specific_experts)]
        return specs

    def extra_losses(self, xv, masks, z, outs, idx, context, g):
        return {"orthogonal": self.orthogonality(z)} if self.weights["orthogonal"] else {}


@register
class ADASIDTokenizer(MultiExpertTokenizer):
    method = "adasid"
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
        g = self.gates(self.split(torch.as_tensor(np.asarray(x, dtype=np.float32)))).numpy()
        first = self.config.levels * (self.config.n_shared_experts + self.config.n_specific_experts)
        return {f"weight_{first + j}": g[:, j] for j in range(g.shape[1])}


@register
class MACRecTokenizer(MultiExpertTokenizer):
    method = "macrec"
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
            scores = torch.rand(n, n, generator=g) * same
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
