"""Ranking by trie-constrained beam search: per-view tries, history exclusion, batched beams, and the
dual-view ensemble of a multi-view (MACRec) SID.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sidkit.devices import runs_on_device
from sidkit.precision import Precision, autocast
from sidkit.retrieval.config import GeneratorConfig, SIDVocabulary
from sidkit.retrieval.models import SIDGenerator, pad_left, sequences_to_tokens
from sidkit.retrieval.trie import SIDTrie


@dataclass
class ViewIndex:
    """The trie of one view's SIDs (some SID positions) and the items behind each: in a view, several
    items may share a SID (MACRec's text codes of two items can agree); the whole SID is unique."""

    positions: list[int]
    trie: SIDTrie               # over unique view SIDs; trie.item(sid) -> index into ``items``
    items: list[list[int]]      # unique view SID -> item rows
    keys: list[tuple[int, ...]]  # unique view SIDs
    key_of: np.ndarray          # item row -> index into ``keys``

    @classmethod
    def build(cls, sids: np.ndarray, positions: list[int]) -> "ViewIndex":
        unique, inverse = np.unique(sids[:, positions], axis=0, return_inverse=True)
        inverse = np.asarray(inverse).reshape(-1)
        items: list[list[int]] = [[] for _ in range(len(unique))]
        for row, k in enumerate(inverse.tolist()):
            items[k].append(row)
        keys = [tuple(int(c) for c in u) for u in unique.tolist()]
        return cls(list(positions), SIDTrie(keys, list(range(len(unique)))), items, keys, inverse)

    def fully_covered(self, rows: set[int]) -> set[tuple[int, ...]]:
        """The view SIDs all of whose items are in ``rows`` (a beam need not produce them)."""
        keys = {int(self.key_of[r]) for r in rows}
        return {self.keys[k] for k in keys if all(i in rows for i in self.items[k])}

@torch.no_grad()
def beam_search(model, histories: torch.Tensor, trie: SIDTrie, vocab: SIDVocabulary,
                beam_size: int, precision: Precision = "fp32", positions: list[int] | None = None,
                task: tuple[int, int, str] | None = None,
                exclude: list[set[tuple[int, ...]]] | None = None) -> tuple[list[list[tuple[int, ...]]], torch.Tensor]:
    """Batched beam search constrained by ``trie``; returns per user the SIDs (best first) and scores.
    ``exclude``: per user, complete SIDs the search must not produce (masked at the last position).

    histories: (batch, T) left-padded token ids ending with the last history item's tokens.
    ``model`` provides ``start(tokens) -> (last logits, state)`` and ``extend(state, tokens)``,
    with ``state.select(rows)``: the history is encoded once, and each decoding step feeds
    only the new token of each beam against the cached keys/values. ``positions``: the SID
    positions generated (a view; default all); ``task`` is passed to ``model.start`` (item-level
    model: source view, target view, kind).
    """
    model.eval()
    B = histories.shape[0]
    offsets = vocab.offsets
    positions = list(range(vocab.length)) if positions is None else positions
    with autocast(precision):
        logits, state = model.start(histories) if task is None else model.start(histories, task=task)
    banned = _banned_leaves(trie, exclude) if exclude is not None else None
    scores = torch.zeros(B, 1)                        # (B, beams)
    nodes = torch.zeros(B, dtype=torch.long)          # each row's trie node (its prefix); -1 = dead
    codes = torch.zeros(B, 0, dtype=torch.long)       # each row's prefix
    beams = 1
    new_tokens = None                                 # each step's chosen tokens, fed to the next step
    for step, position in enumerate(positions):
        if step:
            with autocast(precision):
                logits, state = model.extend(state, new_tokens)
        lo, hi = offsets[position], offsets[position] + vocab.sizes[position]
        logp = F.log_softmax(logits.float(), dim=-1)[:, lo:hi]  # (B * beams, codes at this position)
        child = trie.children(step, nodes, hi - lo)              # (B * beams, codes): -1 = no item there
        valid = child >= 0
        if banned is not None and step == len(positions) - 1:
            user = torch.arange(B).repeat_interleave(beams)[:, None]
            query = user * trie.n_leaves + child
            at = torch.searchsorted(banned, query).clamp_max(max(len(banned) - 1, 0))
            valid &= ~((banned[at] == query) if len(banned) else torch.zeros_like(valid))
        cand = (scores.reshape(-1, 1) + logp.masked_fill(~valid, float("-inf"))).reshape(B, beams * logp.shape[1])
        k = min(beam_size, int(torch.isfinite(cand).sum(1).max()))
        top_scores, top_idx = cand.topk(k, dim=1)
        parent = top_idx // logp.shape[1]
        code = top_idx % logp.shape[1]
        rows = (torch.arange(B)[:, None] * beams + parent).reshape(-1)
        new_tokens = (code + lo).reshape(-1)
        state = state.select(rows)
        nodes = child.reshape(B, -1).gather(1, top_idx).reshape(-1)
        codes = torch.cat([codes[rows], code.reshape(-1, 1)], 1)
        scores = top_scores
        beams = k
    scores = scores.cpu()
    finite = torch.isfinite(scores).tolist()
    per_user = codes.reshape(B, beams, -1).tolist()
    sids = [[tuple(sid) for sid, ok in zip(per_user[b], finite[b]) if ok] for b in range(B)]
    return sids, scores


def _banned_leaves(trie: SIDTrie, exclude: list[set[tuple[int, ...]]]) -> torch.Tensor:
    """Sorted keys ``user * n_leaves + leaf`` of each user's excluded SIDs (those in the trie)."""
    keys = [u * trie.n_leaves + leaf for u, sids in enumerate(exclude) for sid in sids
            if (leaf := trie.leaf(sid)) is not None]
    return torch.tensor(sorted(keys), dtype=torch.long)

def view_indexes(sids: np.ndarray, views: list[list[int]] | None) -> list[ViewIndex]:
    """One ViewIndex per view (several views only for a multi-view SID; else the whole SID)."""
    return [ViewIndex.build(sids, v) for v in (views if views and len(views) > 1 else [list(range(sids.shape[1]))])]


@runs_on_device
def generate_ranked(model: SIDGenerator, vocab: SIDVocabulary, sids: np.ndarray, histories: list[list[int]],
                    cfg: GeneratorConfig, views: list[list[int]] | None = None,
                    indexes: list[ViewIndex] | None = None,
                    single_view: dict[int, list[list[int]]] | None = None) -> list[list[int]]:
    """Ranked item rows per history (item rows), by beam search batched across users.

    One view (any SID): the beams' SIDs in score order. Several views (MACRec): each view's beams
    (history and target read in that view) give their items the beam's log-probability; with
    ``cfg.ensemble_bonus`` set, an item found in both views scores the mean plus the bonus, items
    found in one view keep their score (the dual-view ensemble); otherwise view 0's beams only.
    Items sharing a view SID share its score, in catalogue order. ``indexes``: ``view_indexes(sids,
    views)`` when the caller ranks repeatedly (validation), so the tries are built once.
    ``single_view`` (a dict, filled when the ensemble runs): per view, each history's ranking by that view's
    beams alone, from the same beams (for view 0 exactly what ``ensemble_bonus: None`` gives): the "no
    ensemble" ablation at no extra cost, on the same generator and users.
    """
    model.to(torch.get_default_device())   # SIDKIT_DEVICE (sidkit.devices); a no-op where it already is
    indexes = indexes or view_indexes(sids, views)
    multi_view = len(indexes) > 1
    used = list(range(len(indexes))) if multi_view and cfg.ensemble_bonus is not None else [0]
    sid_tokens = vocab.tokens(sids)
    out: list[list[int]] = []
    for start in range(0, len(histories), cfg.eval_batch_size):
        rows = histories[start:start + cfg.eval_batch_size]
        batch = pad_left(sequences_to_tokens(rows, sid_tokens, cfg.max_history))
        seen = [set(r) for r in rows] if cfg.exclude_history else [set() for _ in rows]
        per_view = []
        for v in used:
            exclude = [indexes[v].fully_covered(s) for s in seen] if cfg.exclude_history else None
            ranked, scores = beam_search(model, batch, indexes[v].trie, vocab, cfg.beam_size, precision=cfg.precision,
                                         positions=indexes[v].positions, task=(v, v, "next") if multi_view else None,
                                         exclude=exclude)
            per_view.append((v, ranked, scores))
        for b in range(batch.shape[0]):
            found: dict[int, list[float]] = {}
            for v, ranked, scores in per_view:
                own = []                           # this view's items in its beam order
                for j, sid in enumerate(ranked[b]):
                    for item in indexes[v].items[indexes[v].trie.item(sid)]:
                        if item not in seen[b]:
                            found.setdefault(item, []).append(float(scores[b, j]))
                            own.append(item)
                if single_view is not None and len(used) > 1:
                    single_view.setdefault(v, []).append(own)
            if len(used) == 1:
                out.append(list(found))            # insertion order = beam order
            else:
                final = {i: (sum(s) / len(s) + cfg.ensemble_bonus if len(s) > 1 else s[0]) for i, s in found.items()}
                out.append(sorted(final, key=lambda i: -final[i]))
    return out
