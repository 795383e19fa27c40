"""Stable SIDs across retraining: extend a published SID table instead of re-deriving it.

``extend_sid_table`` keeps the SID of every item that the published table already has
(new-item churn is zero by construction) and gives each new item a free SID:

* the tokenizer (the one that produced the published table) encodes the new items;
* ``append_token``: the new item keeps its codes and gets the smallest disambiguation
  token unused under that prefix (published SIDs included);
* ``relocate``: the nearest free tuple in the same "change as late a level as possible"
  order as sidkit.sids.collisions (published SIDs count as taken);
* ``none``: raw codes (collisions possible, the health gate decides).

Published items missing from the new catalogue are retired: their SIDs stay reserved
(never handed to another item) and are listed in ``info["retired_sids"]``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from sidkit.features.embeddings import ItemEmbeddings
from sidkit.sids.collisions import CollisionPolicy, _nearest_free
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
        new_codes = np.asarray(enc.codes, np.int64)
        codes[new_rows] = new_codes
        taken = {tuple(r) for r in pub_final.tolist()}  # kept and retired SIDs
        if policy is CollisionPolicy.APPEND_TOKEN:
            next_token: dict[tuple, int] = defaultdict(int)
            for r in pub_final.tolist():
                next_token[tuple(r[:L])] = max(next_token[tuple(r[:L])], r[L] + 1)
            own = enc.distances[np.arange(len(new_rows)), L - 1, new_codes[:, L - 1]] if enc.distances is not None \
                else np.zeros(len(new_rows))
            for j in np.lexsort((np.arange(len(new_rows)), own, *new_codes.T[::-1])):
                prefix = tuple(new_codes[j].tolist())
                final[new_rows[j]] = (*prefix, next_token[prefix])
                next_token[prefix] += 1
        elif policy is CollisionPolicy.RELOCATE:
            sizes = tokenizer.codebook_sizes
            capacity = float(np.prod([float(k) for k in sizes]))
            if len(taken) + len(new_rows) > capacity:
                raise ValueError(f"{len(taken)} published and {len(new_rows)} new items do not fit in a code space of "
                                 f"{int(capacity)} SIDs; retrain the tokenizer with more codes (full retrain mode)")
            for j in range(len(new_rows)):
                sid = tuple(new_codes[j].tolist())
                if sid in taken:
                    sid = _nearest_free(sid, enc.distances[j], sizes, taken)
                taken.add(sid)
                final[new_rows[j]] = sid
        else:
            final[new_rows] = new_codes
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

