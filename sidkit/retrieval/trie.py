"""A trie of valid SIDs: constrained decoding can only produce SIDs of real items."""

from __future__ import annotations

from typing import Sequence

import torch


class SIDTrie:
    """Valid next tokens for every prefix of the catalogue's (unique, equal-length) SIDs.

    ``allowed(prefix)`` is a sorted LongTensor of the position-local codes that continue
    ``prefix`` to at least one item; ``item(sid)`` maps a complete SID to its item.

    For batched decoding the trie is also held as tensors: at depth d every prefix of length d is
    a node (the root is node 0 of depth 0), and ``children(d, nodes, width)`` gives, for a whole
    batch of nodes at once, the child node of every code (-1 where no item continues). The edges
    of depth d are the sorted keys ``parent * width_d + code``, looked up with ``searchsorted``:
    memory grows with the number of SIDs, not with the number of prefixes times the codebook
    size, so a catalogue of millions of items fits. Nodes at depth ``length`` are the leaves: one
    per SID, ``leaf(sid)`` / ``sid_of_leaf``.
    """

    def __init__(self, sids: Sequence[Sequence[int]], items: Sequence[str]):
        if not len(sids):
            raise ValueError("a SID trie needs at least one SID")
        lengths = {len(s) for s in sids}
        if len(lengths) != 1:
            raise ValueError(f"all SIDs must have the same length, got lengths {sorted(lengths)}")
        self.length = lengths.pop()
        self._items: dict[tuple[int, ...], str] = {}
        for sid, item in zip(sids, items):
            sid = tuple(int(c) for c in sid)
            if sid in self._items:
                raise ValueError(f"SID {sid} is not unique (items {self._items[sid]!r} and {item!r}); "
                                 "resolve collisions first")
            self._items[sid] = item
        self._build_edges()

    def _build_edges(self) -> None:
        # the index lives on the CPU (built once, read by .tolist()); children() copies an edge table to the
        # device of the nodes it is asked about, once per device
        codes = torch.tensor(list(self._items), dtype=torch.long, device="cpu").reshape(len(self._items), self.length)
        self.widths = (codes.max(0).values + 1).tolist()
        parent = torch.zeros(len(codes), dtype=torch.long, device="cpu")
        self._edges: list[torch.Tensor] = []
        for d in range(self.length):
            keys, parent = torch.unique(parent * self.widths[d] + codes[:, d], return_inverse=True)
            self._edges.append(keys)                  # sorted; node id of a child = its edge's index
        self.sid_of_leaf = torch.empty_like(codes)
        self.sid_of_leaf[parent] = codes
        self._leaf = {sid: int(leaf) for sid, leaf in zip(self._items, parent.tolist())}
        self._edges_on: dict[torch.device, list[torch.Tensor]] = {torch.device("cpu"): self._edges}

    def _edges_at(self, device: torch.device) -> list[torch.Tensor]:
        if device not in self._edges_on:
            self._edges_on[device] = [e.to(device) for e in self._edges]
        return self._edges_on[device]

    def children(self, depth: int, nodes: torch.Tensor, width: int) -> torch.Tensor:
        """nodes (R,) at ``depth`` -> (R, width): the child node reached by each code, -1 where the
        code continues no SID (also for invalid nodes, -1, and codes beyond this trie's codebook)."""
        w = self.widths[depth]
        codes = torch.arange(min(width, w), device=nodes.device)
        query = nodes[:, None] * w + codes[None, :]
        keys = self._edges_at(nodes.device)[depth]
        at = torch.searchsorted(keys, query).clamp_max(len(keys) - 1)
        child = torch.where((keys[at] == query) & (nodes[:, None] >= 0), at, -1)
        if width > w:
            child = torch.cat([child, child.new_full((len(nodes), width - w), -1)], 1)
        return child

    def leaf(self, sid: Sequence[int]) -> int | None:
        return self._leaf.get(tuple(int(c) for c in sid))

    @property
    def n_leaves(self) -> int:
        return len(self._items)

    def allowed(self, prefix: Sequence[int]) -> torch.Tensor:
        """The codes that continue ``prefix`` (one prefix; decoding uses ``children`` for a whole batch)."""
        if len(prefix) >= self.length:
            return torch.empty(0, dtype=torch.long, device="cpu")
        node = torch.zeros(1, dtype=torch.long, device="cpu")
        for depth, code in enumerate(prefix):
            width = self.widths[depth]
            node = self.children(depth, node, width)[:, int(code)] if 0 <= int(code) < width else node.new_full((1,), -1)
        return torch.nonzero(self.children(len(prefix), node, self.widths[len(prefix)])[0] >= 0).reshape(-1)

    def item(self, sid: Sequence[int]) -> str | None:
        return self._items.get(tuple(int(c) for c in sid))

    def __len__(self) -> int:
        return len(self._items)
