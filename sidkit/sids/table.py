"""The SID table: one row per item, its final (unique) SID and the raw codes it came from.

Columns: ``item_id``; ``sid_0 .. sid_{M-1}`` the final SID (M = L, or L + 1 with the
``append_token`` policy); ``code_0 .. code_{L-1}`` the tokenizer's raw codes before
collision resolution; ``collided`` whether the raw tuple was shared; ``sid`` the
printable form ``<a_12><b_3><c_200>`` (level letters a, b, c, ...); optional
``weight_<position>`` columns carry per-item weights of SID positions (ADA-SID's router).
"""

from __future__ import annotations

import html
import string
from dataclasses import dataclass, field

import numpy as np
import polars as pl


@dataclass
class SIDTable:
    frame: pl.DataFrame
    method: str
    codebook_sizes: list[int]
    collision_policy: str
    info: dict = field(default_factory=dict)

    @property
    def sid_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c.startswith("sid_")]

    @property
    def code_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c.startswith("code_")]

    def sids(self) -> np.ndarray:
        return self.frame.select(self.sid_columns).to_numpy().astype(np.int64)

    def codes(self) -> np.ndarray:
        return self.frame.select(self.code_columns).to_numpy().astype(np.int64)

    def lookup(self) -> dict[tuple[int, ...], str]:
        """SID tuple -> item id (the map generative retrieval decodes with)."""
        return {tuple(s): i for s, i in zip(self.sids().tolist(), self.frame["item_id"].to_list())}

    def usage_html(self, title: str = "SID code usage") -> str:
        """Per-level code-usage histograms (inline SVG, no external assets)."""
        parts = [f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                 "<style>body{font-family:sans-serif;margin:1.5em}</style></head><body>"
                 f"<h2>{html.escape(title)}</h2><p>method <b>{html.escape(self.method)}</b>, "
                 f"{self.frame.height} items, codebooks {self.codebook_sizes}, collision policy "
                 f"<b>{html.escape(self.collision_policy)}</b>, {int(self.frame['collided'].sum())} items had a "
                 "shared raw SID before resolution.</p>"]
        codes = self.codes()
        for level, k in enumerate(self.codebook_sizes):
            counts = np.bincount(codes[:, level], minlength=k)[:k]
            parts.append(f"<h3>level {level}: {int((counts > 0).sum())}/{k} codes used, max {int(counts.max())} "
                         f"items on one code</h3>{_bars(counts)}")
        parts.append("</body></html>")
        return "".join(parts)


def _bars(counts: np.ndarray, width: int = 760, height: int = 120) -> str:
    k = len(counts)
    top = max(int(counts.max()), 1)
    bw = width / k
    rects = "".join(
        f"<rect x='{i * bw:.2f}' y='{height - c / top * height:.2f}' width='{max(bw - 0.5, 0.5):.2f}' "
        f"height='{c / top * height:.2f}' fill='#3b6ea5'><title>code {i}: {c}</title></rect>"
        for i, c in enumerate(counts.tolist()))
    return (f"<svg width='{width}' height='{height + 16}' xmlns='http://www.w3.org/2000/svg'>{rects}"
            f"<text x='0' y='{height + 14}' font-size='11'>code 0</text>"
            f"<text x='{width - 60}' y='{height + 14}' font-size='11'>code {k - 1}</text></svg>")


def build_sid_table(item_ids: list[str], codes: np.ndarray, final: np.ndarray, method: str,
                    codebook_sizes: list[int], collision_policy: str, info: dict | None = None,
                    extra_columns: dict[str, np.ndarray] | None = None) -> SIDTable:
    codes = np.asarray(codes, np.int64)
    final = np.asarray(final, np.int64)
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    letters = string.ascii_lowercase
    printable = ["".join(f"<{letters[l % 26]}_{v}>" for l, v in enumerate(row)) for row in final.tolist()]
    data = {"item_id": item_ids}
    data.update({f"sid_{l}": final[:, l] for l in range(final.shape[1])})
    data.update({f"code_{l}": codes[:, l] for l in range(codes.shape[1])})
    data["collided"] = counts[inverse.ravel()] > 1
    data["sid"] = printable
    data.update({k: np.asarray(v, dtype=np.float32) for k, v in (extra_columns or {}).items()})
    return SIDTable(pl.DataFrame(data), method, list(codebook_sizes), str(collision_policy), dict(info or {}))
