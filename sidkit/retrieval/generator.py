"""Generative retrieval over SID tokens, trained from scratch, with trie-constrained beam search.

Two architectures (``GeneratorConfig.history``), both reading a user's history only as SID
tokens (no item IDs) and generating the next item's SID token by token under a trie of real SIDs:

* ``items`` (default): an encoder-decoder in TIGER's spirit with an item-level encoder. Each history
  item enters the causal encoder as the sum of its SID tokens' embeddings (one position per item,
  not one per token); a small causal decoder generates the next item's SID tokens from the
  encoder state after the history. Every item of a training sequence is a target in one pass
  (the encoder is causal over items), so a 20-item window costs 21 encoder positions instead of
  ~85. Why this is the default: the token-level model below must first learn to compose 4 tokens
  into an item before it can learn item-to-item transitions; on Amazon Beauty it stayed near
  popularity within the epochs this CPU affords (R@10 0.023, BENCHMARKS.md), while the item-level
  encoder learns transitions at the pace of a sequential recommender. TIGER's own encoder is
  token-level; ours differs there (documented choice). With ``cross_attention`` the decoder also
  attends to every encoder output of the history, as TIGER's decoder does, not only to the state
  after the last item.
* ``tokens``: decoder-only over the flat token sequence ``BOS, sid(item_1), sid(item_2), ...``;
  every token is predicted from all earlier tokens; beam search reuses cached history keys.

This module is the public entry point; the parts live one concept per module:

==========================  =====================================================================
``config``                  GeneratorConfig, the token layout, SIDVocabulary
``layers``                  causal block (self-attention + feed-forward), cross-attention, init, masks
``item_model``              ItemHistoryGenerator (``history: items``) and MACRec's multi-view tasks
``token_model``             TokenHistoryGenerator (``history: tokens``)
``models``                  build_generator, max_tokens, item histories -> token rows
``decoding``                trie-constrained beam search, view tries, generate_ranked
``training``                train_generator: windows, schedule, weight average, early stopping
==========================  =====================================================================

Tokens: 0 = padding, 1 = BOS; SID position p's code c is token ``2 + offset[p] + c``. A batch of
histories is ``BOS, sid(item_1), ...`` per row, left-padded; positions are counted from BOS (left
padding does not shift them). ``forward(tokens)`` returns the logits that predict ``tokens[:, 1:]``.
"""

from sidkit.retrieval.config import BOS, IGNORE, N_SPECIAL, PAD, TASK_KINDS, GeneratorConfig, SIDVocabulary
from sidkit.retrieval.decoding import ViewIndex, beam_search, generate_ranked, view_indexes
from sidkit.retrieval.item_model import CrossMemory, ItemDecodeState, ItemHistoryGenerator, task_loss
from sidkit.retrieval.models import SIDGenerator, build_generator, max_tokens, pad_left, sequences_to_tokens
from sidkit.retrieval.token_model import DecodeState, TokenHistoryGenerator
from sidkit.retrieval.training import WeightAverage, train_generator, training_windows, view_tasks

__all__ = [
    "BOS", "IGNORE", "N_SPECIAL", "PAD", "TASK_KINDS", "GeneratorConfig", "SIDVocabulary",
    "ViewIndex", "beam_search", "generate_ranked", "view_indexes",
    "CrossMemory", "ItemDecodeState", "ItemHistoryGenerator", "task_loss",
    "SIDGenerator", "build_generator", "max_tokens", "pad_left", "sequences_to_tokens",
    "DecodeState", "TokenHistoryGenerator",
    "WeightAverage", "train_generator", "training_windows", "view_tasks",
]
