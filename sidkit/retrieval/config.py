"""The generator's settings, its token layout and the SID vocabulary.

Tokens: 0 = padding, 1 = BOS; SID position p's code c is token ``2 + offset[p] + c``. A batch of
histories is ``BOS, sid(item_1), ...`` per row, left-padded; positions are counted from BOS (left
padding does not shift them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sidkit.precision import Precision


PAD, BOS, N_SPECIAL = 0, 1, 2
IGNORE = -100   # a target that is no target, in per-position (compact) code indexes

TASK_KINDS = ("next", "translate")   # item-level tasks: next item, or the same item in another view

class GeneratorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    d_model: int = Field(128, ge=1)
    n_layers: int = Field(4, ge=1)
    n_heads: int = Field(4, ge=1)
    d_ff: int = Field(512, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    max_history: int = Field(20, ge=1)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_steps: int = 200       # linear warm-up, then cosine decay to 10% of lr over `epochs`
    schedule: Literal["cosine", "constant"] = "cosine"
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0)  # > 0: validate, select and return an exponential moving
                                                   # average of the weights (per step; ramped up as
                                                   # min(decay, (1 + step) / (10 + step))); 0 = the live weights
    beam_size: int = Field(20, ge=1)
    # reporting: a second test beam of this width over the same trained generator gives Recall/NDCG@K for the deep
    # cut-offs beyond ``beam_size`` (K in 20, 50, 100 up to this width; a beam of B finds at most ~B items), as
    # ADA-SID reports R@50/R@100. K <= beam_size stays from the protocol's beam, so it changes no other number
    # (and is not part of the protocol's hash). None: no second beam
    deep_beam_size: int | None = Field(None, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    patience: int = 5             # validations without improvement before stopping
    valid_every: int = 1          # validate (beam search on validation users) every N epochs
    valid_users: int = 0          # validate on a fixed random sample of this many users (0 = all)
    level_embedding: bool = True  # add an embedding of the SID position (level) each token is at
    precision: Precision = "auto"  # auto: bf16 autocast where the CPU has native bf16, else fp32 (sidkit.precision)
    history: Literal["items", "tokens"] = "items"   # item-level encoder + SID decoder, or decoder-only over tokens
    decoder_layers: int = 1       # ``items``: layers of the causal decoder over the next item's SID tokens
    decoder_d_ff: int | None = None  # ``items``: the decoder's feed-forward width (None: d_ff). The decoder
                                     # runs on L positions per target item, the encoder on one, so a wide
                                     # encoder with a narrow decoder costs far less than both wide
    cross_attention: bool = True   # ``items``: each decoder layer also attends to the encoder outputs of the
                                   # whole history (TIGER's encoder-decoder); False: the decoder sees only
                                   # the encoder state after the last item
    tie_item_embeddings: bool = False  # ``items``: True: history items are summed from the decoder's
                                       # (output-tied) token table; False: from a separate table
    prefix_ngram_buckets: int = 0     # ``items``: > 0 adds to each history item the embeddings of its SID
                                      # prefixes (c1), (c1,c2), ... hashed into this many rows per prefix length
                                      # (prefix n-grams, Singh et al. 2023); 0 = tokens only
    # MACRec's generator side (item-level model; used when the SID has views, e.g. MACRec's two branches)
    views: Literal["auto", "joint"] = "auto"   # auto: a MACRec SID is read as its branches' views; joint: one view
    view_tasks: list[Literal["next", "cross_next", "translate"]] = ["next", "cross_next", "translate"]
    implicit_alignment: float = 0.01   # weight of the encoder's cross-view InfoNCE (0 = off)
    # what the implicit alignment pairs: ``items`` (MACRec's official code: one item's encoding in one view
    # against the same item's encoding in the other, the batch's other distinct items as negatives) or
    # ``histories`` (sidkit's earlier choice: the state after a whole history read in each view)
    implicit_alignment_scope: Literal["items", "histories"] = "items"
    ensemble_bonus: float | None = 1.0  # dual-view ensemble: items both views' beams find get mean + bonus;
                                        # None: rank by view 0's beams only
    # router: each history item's SID token embeddings are scaled by the item's per-position weights before they
    # are summed (ADA-SID's router, the SID table's weight_<p> columns; methods.md: "the behavioural SID
    # embeddings are scaled by g_i in the downstream model"); generated SIDs are unchanged. none: unweighted
    sid_weights: Literal["none", "router"] = "none"
    exclude_history: bool = False  # rank only items the user has not interacted with (the history's items
                                   # are masked in the beam search itself, so they take no beam slot). For
                                   # data without repeat consumption (5-core Amazon, MovieLens ratings);
                                   # keep False where users re-buy
    seed: int = 0

@dataclass
class SIDVocabulary:
    """Maps SIDs (per-position codes) to token ids and back."""

    sizes: list[int]

    @classmethod
    def from_sids(cls, sids: np.ndarray) -> "SIDVocabulary":
        return cls([int(sids[:, p].max()) + 1 for p in range(sids.shape[1])])

    @property
    def length(self) -> int:
        return len(self.sizes)

    @property
    def offsets(self) -> list[int]:
        return [N_SPECIAL + sum(self.sizes[:p]) for p in range(self.length)]

    @property
    def size(self) -> int:
        return N_SPECIAL + sum(self.sizes)

    def tokens(self, sids: np.ndarray) -> np.ndarray:
        return np.asarray(sids, dtype=np.int64) + np.asarray(self.offsets, dtype=np.int64)[None, :]
