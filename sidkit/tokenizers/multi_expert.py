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
Methods (one module each): ``mmq`` (sidkit.tokenizers.mmq), ``adasid`` (sidkit.tokenizers.adasid),
``macrec`` (sidkit.tokenizers.macrec).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from sidkit.errors import ConfigError
from sidkit.quantise import CodebookLevel, ResidualQuantiser
from sidkit.tokenizers.base import TokenizerConfig
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
    READS = GradientTokenizer.READS | {"latent_dim", "hidden_dims", "dropout", "beta", "gradient", "loss_weights"}
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
        sample = x[torch.randperm(len(x), generator=g, device="cpu")[: max(c.batch_size, 20 * c.codebook_size)]]
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
