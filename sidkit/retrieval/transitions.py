"""Last-k-items transition counts: the strong simple baseline of sequential recommendation on sparse catalogues
(on Beauty it ranks above every SID generator so far), and the prior of the hybrid ranking (hybrid.py).

An item's score for a history is the count of training transitions (a -> item) from each of the history's last
``last`` items, the most recent weighted 1, the one before ``decay``, then ``decay**2``, ... (on Beauty:
last 3, decay 1/2, the reference row of the downstream tables).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence


class TransitionPrior:
    """Decayed last-k-items transition counts over item rows."""

    def __init__(self, sequences: Iterable[Sequence[int]], pairs: Iterable[tuple[int, int]] = (),
                 last: int = 3, decay: float = 0.5):
        """``sequences``: the training sequences (each consecutive pair is a transition); ``pairs``: further
        (from, to) transitions, e.g. each validation user's last history item and validation target when
        ranking the test split."""
        if last < 1:
            raise ValueError(f"TransitionPrior: last must be >= 1, got {last}")
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"TransitionPrior: decay must be in (0, 1], got {decay}")
        self.last, self.decay = last, decay
        self.counts: dict[int, Counter] = defaultdict(Counter)
        for seq in sequences:
            for a, b in zip(seq, seq[1:]):
                self.counts[a][b] += 1
        for a, b in pairs:
            self.counts[a][b] += 1

    def scores(self, history: Sequence[int], exclude: set[int] | frozenset[int] = frozenset()) -> Counter:
        """Decayed counts of the items that followed the history's last items (items in ``exclude`` left out)."""
        c: Counter = Counter()
        for k, item in enumerate(reversed(history[-self.last:])):
            weight = self.decay ** k
            for j, n in self.counts.get(item, {}).items():
                if j not in exclude:
                    c[j] += n * weight
        return c

    def distribution(self, history: Sequence[int], exclude: set[int] | frozenset[int] = frozenset()) -> dict[int, float]:
        """``scores`` normalised to sum to 1 (empty where no transition leaves the history's last items)."""
        c = self.scores(history, exclude)
        total = sum(c.values())
        return {j: n / total for j, n in c.items()} if total > 0 else {}

    def top(self, history: Sequence[int], k: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[int]:
        """The ``k`` best-scored items (ties in first-seen order, as ``Counter.most_common``)."""
        return [i for i, _ in self.scores(history, exclude).most_common(k)]
