"""A trie of valid SIDs: constrained decoding can only produce SIDs of real items."""

from __future__ import annotations

from typing import Sequence

import torch


class SIDTrie:
    """Valid next tokens for every prefix of the catalogue's (unique, equal-length) SIDs.

    ``allowed(prefix)`` is a sorted LongTensor of the position-local codes that continue
    ``prefix`` to at least one item; ``item(sid)`` maps a complete SID to its item.
    """

    def __init__(self, sids: Sequence[Sequence[int]], items: Sequence[str]):
        if not len(sids):
            raise ValueError("a SID trie needs at least one SID")
        lengths = {len(s) for s in sids}
        if len(lengths) != 1:
            raise ValueError(f"all SIDs must have the same length, got lengths {sorted(lengths)}")
        self.length = lengths.pop()
        self._children: dict[tuple[int, ...], set[int]] = {}
        self._items: dict[tuple[int, ...], str] = {}
        for sid, item in zip(sids, items):
            sid = tuple(int(c) for c in sid)
            if sid in self._items:
                raise ValueError(f"SID {sid} is not unique (items {self._items[sid]!r} and {item!r}); "
                                 "resolve collisions first")
            self._items[sid] = item
            for d in range(self.length):
                self._children.setdefault(sid[:d], set()).add(sid[d])
        self._allowed = {p: torch.tensor(sorted(c), dtype=torch.long) for p, c in self._children.items()}

    def allowed(self, prefix: Sequence[int]) -> torch.Tensor:
        return self._allowed.get(tuple(int(c) for c in prefix), torch.empty(0, dtype=torch.long))

    def item(self, sid: Sequence[int]) -> str | None:
        return self._items.get(tuple(int(c) for c in sid))

    def __len__(self) -> int:
        return len(self._items)
