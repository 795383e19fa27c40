"""Stable SIDs across retraining: extend a published SID table instead of re-deriving it.

``extend_sid_table`` keeps the SID of every item that the published table already has
(new-item churn is zero by construction) and gives each new item a free SID:

* the tokenizer (the one that produced the published table) encodes the new items;
* collisions are resolved by the table's policy with the published SIDs as prior occupancy
  (``sidkit.sids.collisions.resolve_collisions(..., taken=...)``, the one resolver):
  ``append_token`` continues each prefix's disambiguation tokens after the published ones,
  ``relocate`` moves a new item off a published tuple, ``none`` keeps raw codes (collisions
  possible, the health gate decides).

Published items missing from the new catalogue are retired: their SIDs stay reserved
(never handed to another item) and are listed in ``info["retired_sids"]``.
"""

from __future__ import annotations

import numpy as np

from sidkit.evaluation.sid_quality import expert_blocks
from sidkit.features.embeddings import ItemEmbeddings
from sidkit.sids.collisions import CollisionPolicy, resolve_collisions
from sidkit.sids.table import SIDTable, build_sid_table
from sidkit.tokenizers.base import Tokenizer


def extend_sid_table(published: SIDTable, tokenizer: Tokenizer, embeddings: ItemEmbeddings) -> tuple[SIDTable, dict]:
    policy = CollisionPolicy(published.collision_policy)
    pub_ids = published.frame["item_id"].to_list()
    pub_index = {i: k for k, i in enumerate(pub_ids)}
    pub_final = published.sids()
    pub_codes = published.codes()
    current = embeddings.item_ids
    new_rows = [k for k, i in enumerate(current) if i not in pub_index]
    kept_rows = [k for k, i in enumerate(current) if i in pub_index]
    retired = [i for i in pub_ids if i not in set(current)]

    x = embeddings.matrix(tokenizer.config.input_views)
    L = pub_codes.shape[1]
    codes = np.zeros((len(current), L), np.int64)
    final = np.zeros((len(current), pub_final.shape[1]), np.int64)
    for k in kept_rows:
        codes[k], final[k] = pub_codes[pub_index[current[k]]], pub_final[pub_index[current[k]]]
    weights_cols = [c for c in published.frame.columns if c.startswith("weight_")]
    extra = {c: np.zeros(len(current), np.float32) for c in weights_cols}
    for c in weights_cols:
        col = published.frame[c].to_numpy()
        for k in kept_rows:
            extra[c][k] = col[pub_index[current[k]]]

    if new_rows:
        enc = tokenizer.encode(x[new_rows])
        codes[new_rows] = enc.codes
        try:  # published SIDs, kept and retired, are taken: never handed to a new item
            blocks = expert_blocks(published.info, L) if published.info.get("collisions_per_expert") else {}
            final[new_rows] = resolve_collisions(enc.codes, enc.distances, policy, tokenizer.codebook_sizes,
                                                 taken=pub_final, blocks=list(blocks.values()) or None)
        except ValueError as exc:
            raise ValueError(f"{exc}; retrain the tokenizer with more codes (full retrain mode)") from exc
        for c, w in tokenizer.item_weights(x[new_rows]).items():
            if c in extra:
                extra[c][new_rows] = w
    info = {**published.info, "stable_from": published.info.get("model_version"), "kept_items": len(kept_rows),
            "new_items": len(new_rows), "retired_items": len(retired),
            "retired_sids": [list(map(int, pub_final[pub_index[i]])) for i in retired]}
    table = build_sid_table(list(current), codes, final, published.method, published.codebook_sizes,
                            str(policy), info=info, extra_columns=extra)
    stats = {"kept_sids": len(kept_rows), "new_items": len(new_rows), "retired_items": len(retired),
             "kept_share": 1.0 if not kept_rows else float(np.mean(
                 [tuple(final[k]) == tuple(pub_final[pub_index[current[k]]]) for k in kept_rows]))}
    return table, stats

