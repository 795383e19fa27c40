"""Collision policies: make every item's SID unique, deterministically.

``append_token`` (TIGER)
    Keep the L codes and append one disambiguation token: 0 for the first item of a
    colliding group, 1 for the next, ... (order: distance to the last-level code, then
    item index). Every SID gets the extra token, so all SIDs have length L + 1.
``relocate`` (MACRec)
    No extra token. In each colliding group the item closest to its last-level code
    keeps it; the others move to the nearest code that makes their tuple unused, trying
    the last level first, then earlier levels (each alternative combined with the
    nearest free last-level code). Unlike MACRec's code it does not stop after two
    rounds: it runs until every SID is unique, and fails only if the code space
    (prod K_l) is smaller than the number of items.
``none``
    Leave collisions (reported by the quality report; the health gate may reject them).

Prior occupancy (``taken``): SIDs other items already hold -- a published table's, retired items'
included, when a retraining extends it (sidkit.sids.stable). They are never handed out again:
``append_token`` continues each prefix's disambiguation tokens after the taken ones, ``relocate``
moves an item whose tuple is taken (every member of its group, not all but the closest).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from enum import StrEnum

import numpy as np


class CollisionPolicy(StrEnum):
    APPEND_TOKEN = "append_token"
    RELOCATE = "relocate"
    NONE = "none"


def resolve_collisions(codes: np.ndarray, distances: np.ndarray | None, policy: CollisionPolicy | str,
                       codebook_sizes: list[int] | None = None, taken: list | np.ndarray = (),
                       blocks: list[slice] | None = None) -> np.ndarray:
    """Final SIDs (n_items, L or L+1) from raw codes (n_items, L).

    ``distances`` (n_items, L, K) are each level's squared distances; ``relocate``
    needs them, ``append_token`` uses the last level's for ordering (else item order).
    ``taken``: final SIDs held by other items already (see the module's docstring).
    ``blocks``: resolve each block of positions on its own (``relocate`` only), so that every block is
    unique by itself -- a multi-expert SID whose experts are read separately (MACRec's per-modality
    generation: each modality's codes must name one item); the whole SID is then unique too.
    """
    policy = CollisionPolicy(policy)
    codes = np.asarray(codes, dtype=np.int64)
    if blocks:
        if policy is not CollisionPolicy.RELOCATE or distances is None:
            raise ValueError("collisions per expert need the relocate policy (the SID keeps its layout) and per-level "
                             f"code distances; got {policy}{'' if distances is not None else ' without distances'}")
        sizes = codebook_sizes or [distances.shape[2]] * codes.shape[1]
        prior = np.asarray(taken, dtype=np.int64).reshape(-1, codes.shape[1])
        return np.concatenate([resolve_collisions(codes[:, b], distances[:, b], policy, sizes[b], prior[:, b])
                               for b in blocks], axis=1)
    if policy is CollisionPolicy.NONE:
        return codes.copy()
    if policy is CollisionPolicy.APPEND_TOKEN:
        return append_token(codes, distances, taken)
    if distances is None:
        raise ValueError("the relocate policy needs per-level code distances")
    return relocate(codes, distances, codebook_sizes, taken)


def _own_distance(codes: np.ndarray, distances: np.ndarray | None) -> np.ndarray:
    if distances is None:
        return np.zeros(len(codes))
    last = codes.shape[1] - 1
    return distances[np.arange(len(codes)), last, codes[:, last]]


def append_token(codes: np.ndarray, distances: np.ndarray | None = None, taken: list | np.ndarray = ()) -> np.ndarray:
    L = codes.shape[1]
    next_token: dict[tuple, int] = defaultdict(int)
    for row in np.asarray(taken, dtype=np.int64).reshape(-1, L + 1).tolist():
        next_token[tuple(row[:L])] = max(next_token[tuple(row[:L])], row[L] + 1)
    own = _own_distance(codes, distances)
    # sort by tuple, then distance, then index: stable and deterministic
    order = np.lexsort((np.arange(len(codes)), own, *codes.T[::-1]))
    extra = np.zeros(len(codes), np.int64)
    for i in order:
        key = tuple(codes[i].tolist())
        extra[i] = next_token[key]
        next_token[key] += 1
    return np.concatenate([codes, extra[:, None]], axis=1)


def relocate(codes: np.ndarray, distances: np.ndarray, codebook_sizes: list[int] | None = None,
             taken: list | np.ndarray = ()) -> np.ndarray:
    n, L = codes.shape
    sizes = codebook_sizes or [distances.shape[2]] * L
    prior = {tuple(row) for row in np.asarray(taken, dtype=np.int64).reshape(-1, L).tolist()}
    capacity = float(np.prod([float(k) for k in sizes]))
    if n + len(prior) > capacity:
        raise ValueError(f"{n} items{f' (and {len(prior)} SIDs already taken)' if prior else ''} cannot get unique "
                         f"SIDs in a code space of {int(capacity)} tuples")
    out = codes.copy()
    tuples = [tuple(row) for row in codes.tolist()]
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, t in enumerate(tuples):
        groups[t].append(i)
    used = set(groups) | prior
    own = _own_distance(codes, distances)
    # deterministic: groups by tuple, members by distance then index; the closest keeps a free tuple
    for key in sorted(k for k, members in groups.items() if len(members) > 1 or k in prior):
        members = sorted(groups[key], key=lambda i: (own[i], i))
        for i in (members if key in prior else members[1:]):
            new = _nearest_free(tuples[i], distances[i], sizes, used)
            used.add(new)
            out[i] = new
    return out


def _nearest_free(sid: tuple, dist: np.ndarray, sizes: list[int], used: set[tuple]) -> tuple:
    """The first unused tuple in "change as late a level as possible" order.

    Per level the item's own code comes first, then the other codes by distance; the
    product of these orders (last level varying fastest) visits the whole code space,
    so a free tuple is always found when one exists.
    """
    orders = []
    for level, own in enumerate(sid):
        alts = np.argsort(dist[level, : sizes[level]], kind="stable").tolist()
        orders.append([int(own)] + [a for a in alts if a != own])
    for cand in itertools.product(*orders):
        if cand not in used:
            return cand
    raise ValueError("no free SID left")  # unreachable when capacity >= n
