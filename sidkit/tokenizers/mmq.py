"""MMQ (stage 1, method ``mmq``)

``n_specific_experts`` experts per view (view-specific) and ``n_shared_experts`` experts fed
the concatenation of all views [V-2nd]. Every view is decoded from the sum of all experts'
quantised latents [INF]. Orthogonal regularisation: mean over (shared, specific) pairs of the
batch mean of cos^2 between their (pre-quantisation) latents [INF, from the keyword "cosine
similarity"]; weight ``orthogonal`` (default 0.1).

What is taken from the paper and what is our reconstruction is tagged as in
``../shared/docs/methods.md``: [V] verified, [INF] our choice, exposed in config. The shared
architecture (experts, views, losses): sidkit.tokenizers.multi_expert.
"""

from __future__ import annotations

from sidkit.errors import ConfigError
from sidkit.tokenizers.base import register
from sidkit.tokenizers.multi_expert import ExpertSpec, MultiExpertTokenizer


@register
class MMQTokenizer(MultiExpertTokenizer):
    method = "mmq"
    READS = MultiExpertTokenizer.READS | {"n_shared_experts", "n_specific_experts"}
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
