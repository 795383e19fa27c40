"""Train a tokenizer on item embeddings and turn its codes into a SID table."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from sidkit.evaluation.sid_quality import SIDQuality, expert_blocks, sid_quality
from sidkit.features.embeddings import ItemEmbeddings
from sidkit.sids.collisions import CollisionPolicy, resolve_collisions
from sidkit.sids.table import SIDTable, build_sid_table
from sidkit.tokenizers.base import FitContext, Tokenizer, TokenizerConfig, build_tokenizer
from sidkit.utils import log, seed_everything


def fit_tokenizer(embeddings: ItemEmbeddings, config: TokenizerConfig | dict,
                  on_epoch: Callable[[int, dict], None] | None = None) -> tuple[Tokenizer, list[dict]]:
    cfg = config if isinstance(config, TokenizerConfig) else TokenizerConfig.model_validate(config)
    x = embeddings.matrix(cfg.input_views)
    seed_everything(cfg.seed)
    view_dims = {v: int(embeddings.views[v].shape[1]) for v in cfg.input_views}
    tok = build_tokenizer(cfg, x.shape[1], view_dims)
    context = FitContext(masks={v: embeddings.masks[v] for v in cfg.input_views},
                         item_counts=embeddings.item_stats.get("train_count"))
    t0 = time.perf_counter()
    history = tok.fit(x, on_epoch, context)
    log.info("trained %s on %d items x %d dims (views %s) in %.1fs", cfg.method, *x.shape,
             list(cfg.input_views), time.perf_counter() - t0)
    return tok, history


def assign_sids(tokenizer: Tokenizer, embeddings: ItemEmbeddings,
                policy: CollisionPolicy | str = CollisionPolicy.APPEND_TOKEN,
                per_expert: bool = False) -> tuple[SIDTable, SIDQuality]:
    """Encode every item and resolve collisions; ``per_expert``: each expert's block on its own
    (sidkit.sids.collisions; recorded in the table's info so append-mode retraining does the same)."""
    views = tokenizer.config.input_views
    x = embeddings.matrix(views)
    enc = tokenizer.encode(x)
    blocks = expert_blocks(tokenizer.describe(), enc.codes.shape[1])
    if per_expert and not blocks:
        raise ValueError(f"collisions per expert need a tokenizer with several experts side by side; "
                         f"{tokenizer.method} has one block of codes")
    final = resolve_collisions(enc.codes, enc.distances, policy, tokenizer.codebook_sizes,
                               blocks=list(blocks.values()) if per_expert else None)
    recon = tokenizer.reconstruction_loss(x)
    per_view = _per_view_recon(tokenizer, embeddings, views)
    quality = sid_quality(enc.codes, final, tokenizer.codebook_sizes, recon, per_view, blocks)
    info = {"input_views": list(views), **tokenizer.describe(), **({"collisions_per_expert": True} if per_expert else {})}
    table = build_sid_table(embeddings.item_ids, enc.codes, final, tokenizer.method, tokenizer.codebook_sizes,
                            str(CollisionPolicy(policy)), info=info, extra_columns=tokenizer.item_weights(x))
    return table, quality


def measure_quality(tokenizer: Tokenizer, embeddings: ItemEmbeddings, table: SIDTable) -> SIDQuality:
    """SID quality of an existing table (e.g. one extended in append mode) under ``tokenizer``."""
    x = embeddings.matrix(tokenizer.config.input_views)
    pos = {i: k for k, i in enumerate(embeddings.item_ids)}
    rows = [pos[i] for i in table.frame["item_id"].to_list()]
    return sid_quality(table.codes(), table.sids(), tokenizer.codebook_sizes, tokenizer.reconstruction_loss(x[rows]),
                       _per_view_recon(tokenizer, embeddings, tokenizer.config.input_views),
                       expert_blocks(tokenizer.describe(), table.codes().shape[1]))


def _per_view_recon(tokenizer: Tokenizer, embeddings: ItemEmbeddings, views) -> dict[str, float]:
    """MSE per view block of the (concatenated) input, over items that have the view."""
    import torch

    x = embeddings.matrix(views)
    with torch.no_grad():
        tokenizer.eval()
        x_hat = tokenizer.reconstruct(torch.as_tensor(x)).numpy()
    out, start = {}, 0
    for v in views:
        d = embeddings.views[v].shape[1]
        m = embeddings.masks[v]
        if m.any():
            out[v] = float(np.mean((x_hat[m, start:start + d] - x[m, start:start + d]) ** 2))
        start += d
    return out
