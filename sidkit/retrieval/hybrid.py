"""A labelled ensemble: the SID generator's ranking mixed with a last-items transition prior.

This is not a SID method and is never reported as one: it answers whether the generator adds signal that
transition counts (the strongest simple baseline on sparse catalogues) lack. Per user the candidates are the
generator's beam (the protocol's beam) and the prior's top ``n_prior`` items; every candidate gets its exact
generator probability p_gen(SID | history) by teacher forcing (normalised as the beam search scores it), and its
share of the prior's distribution p_prior (transitions.py). Candidates are ranked by the mixture

    p = (1 - w) * p_gen + w * p_prior

with the single weight w chosen on the validation split (prior counted from training sequences only there; for
test, training plus validation transitions, as the reference row counts them). w = 0 is the generator's own
ranking of its beam, w = 1 the transition ranking (generator probability breaks ties). Items in neither list are
not ranked (re-ranking of candidates, documented; the deep cut-offs are not reported for the mixture).
Single-view SIDs only (a multi-view MACRec SID has one probability per view).
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sidkit.precision import Precision, autocast
from sidkit.retrieval.config import GeneratorConfig, SIDVocabulary
from sidkit.retrieval.decoding import generate_ranked
from sidkit.retrieval.metrics import retrieval_metrics, target_ranks
from sidkit.retrieval.models import pad_left, sequences_to_tokens
from sidkit.retrieval.transitions import TransitionPrior


@torch.no_grad()
def sid_log_probs(model, histories: torch.Tensor, candidates: torch.Tensor, vocab: SIDVocabulary,
                  precision: Precision = "fp32") -> torch.Tensor:
    """log p(SID | history) of each candidate SID by teacher forcing: (users, C) for ``histories`` (users, T)
    left-padded tokens and ``candidates`` (users, C, L) per-position codes. Each position's log-softmax is over
    the whole token vocabulary, as ``beam_search`` scores (so a beam's score and this agree)."""
    model.eval()
    users, c, length = candidates.shape
    offsets = vocab.offsets
    with autocast(precision):
        logits, state = model.start(histories)
    rows = torch.arange(users).repeat_interleave(c)
    state, logits = state.select(rows), logits[rows]
    codes = candidates.reshape(users * c, length)
    total = torch.zeros(users * c)
    for p in range(length):
        if p:
            with autocast(precision):
                logits, state = model.extend(state, codes[:, p - 1] + offsets[p - 1])
        logp = F.log_softmax(logits.float(), dim=-1)
        total += logp.gather(1, (codes[:, p] + offsets[p])[:, None])[:, 0]
    return total.reshape(users, c)


@dataclass
class Candidates:
    """One user's candidate items with their generator log-probability and prior probability."""

    items: np.ndarray      # item rows: the beam's first (in beam order), then the prior's not in the beam
    log_gen: np.ndarray    # log p_gen(SID | history)
    prior: np.ndarray      # p_prior(item | history), 0 where no transition reaches it
    n_beam: int = 0        # items[:n_beam] is the generator's own ranking (its beam)


def hybrid_candidates(model, vocab: SIDVocabulary, sids: np.ndarray, histories: list[list[int]],
                      cfg: GeneratorConfig, prior: TransitionPrior, n_prior: int = 20) -> list[Candidates]:
    """Per history: the generator's beam items and the prior's top ``n_prior`` (the history's own items left
    out where ``cfg.exclude_history``), each scored by both models."""
    if n_prior < 0:
        raise ValueError(f"hybrid: n_prior must be >= 0, got {n_prior}")
    beams = generate_ranked(model, vocab, sids, histories, cfg)
    sid_tokens = vocab.tokens(sids)
    codes_of = torch.as_tensor(np.asarray(sids), dtype=torch.long)
    out: list[Candidates] = []
    model = model.to(torch.get_default_device())
    for start in range(0, len(histories), cfg.eval_batch_size):
        rows = histories[start:start + cfg.eval_batch_size]
        seen = [set(h) if cfg.exclude_history else set() for h in rows]
        dists = [prior.distribution(h, s) for h, s in zip(rows, seen)]
        items = []
        for b, dist in enumerate(dists):
            best = sorted(dist, key=lambda j: -dist[j])[:n_prior]      # stable: ties keep first-seen order
            items.append(list(dict.fromkeys(beams[start + b] + best)))
        width = max(1, max(len(i) for i in items))
        # every user scores ``width`` SIDs (its own repeated, or item 0 where it has none); the padding is dropped
        padded = torch.tensor([i + [(i or [0])[0]] * (width - len(i)) for i in items], dtype=torch.long)
        batch = pad_left(sequences_to_tokens(rows, sid_tokens, cfg.max_history))
        log_gen = sid_log_probs(model, batch, codes_of[padded], vocab, cfg.precision).numpy()
        for b, (i, dist) in enumerate(zip(items, dists)):
            out.append(Candidates(np.asarray(i, dtype=np.int64), log_gen[b, :len(i)].astype(np.float64),
                                  np.asarray([dist.get(j, 0.0) for j in i], dtype=np.float64),
                                  len(beams[start + b])))
    return out


def mix(candidates: Sequence[Candidates], weight: float, top: int = 20) -> list[list[int]]:
    """Each user's top items by (1 - weight) * p_gen + weight * p_prior (ties: higher p_gen first)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"hybrid: weight must be in [0, 1], got {weight}")
    ranked = []
    with np.errstate(divide="ignore"):
        a, b = np.log1p(-weight) if weight < 1 else -np.inf, np.log(weight) if weight > 0 else -np.inf
        for c in candidates:
            score = np.logaddexp(a + c.log_gen, b + np.log(c.prior))
            order = np.lexsort((-c.log_gen, -score))[:top]
            ranked.append(c.items[order].tolist())
    return ranked


def choose_weight(candidates: Sequence[Candidates], targets: Sequence[int], grid: Sequence[float],
                  metric: str = "recall@10") -> tuple[float, dict[float, float]]:
    """The grid weight with the best validation ``metric`` (the smallest on a tie) and the whole curve."""
    if not grid:
        raise ValueError("hybrid: empty weight grid")
    curve = {float(w): retrieval_metrics(target_ranks(mix(candidates, w), targets))[metric] for w in grid}
    best = max(curve.values())
    return min(w for w, v in curve.items() if v == best), curve
