"""Item-embedding checks before a tokenizer sees them (Great Expectations, like the data checks):
one row per catalogue item in catalogue order, the encoder's dimension, finite and non-zero rows
where the view is present, unique non-null ids. Failures name the view, row and item."""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from sidkit.data.schema import rejected_frame
from sidkit.data.validation import CheckResult, ValidationReport, gx_context, run_expectations


def validate_embeddings(item_ids: list[str], views: dict[str, np.ndarray], masks: dict[str, np.ndarray],
                        expected_dims: dict[str, int] | None = None, subject: str = "item embeddings"
                        ) -> tuple[ValidationReport, pl.DataFrame]:
    """Shape, finiteness, non-zero rows where present, and alignment with the catalogue's item ids."""
    import pandas as pd

    gx, gxe, ctx = gx_context()
    checks: list[CheckResult] = []
    rejects: list[dict] = []
    n = len(item_ids)
    for view, arr in views.items():
        where = f"{subject}[{view}]"
        if arr.ndim != 2 or arr.shape[0] != n:
            checks.append(CheckResult(view, "shape", view, False, n, [f"{where}: shape {arr.shape}, expected ({n}, dim)"],
                                      "one row per catalogue item, in catalogue order"))
            continue
        want = (expected_dims or {}).get(view)
        if want is not None and arr.shape[1] != want:
            checks.append(CheckResult(view, "dim", view, False, n, [f"{where}: dim {arr.shape[1]}, expected {want}"],
                                      "dimension must match the encoder"))
            continue
        mask = masks.get(view, np.ones(n, bool))
        stats = pd.DataFrame({"item_id": item_ids,
                              "n_nonfinite": (~np.isfinite(arr)).sum(1),
                              "norm_present": np.where(mask, np.linalg.norm(np.nan_to_num(arr), axis=1), 1.0)})
        res = run_expectations(ctx, gx, f"emb_{view}", stats, [
            gxe.ExpectColumnValuesToBeBetween(column="n_nonfinite", min_value=0, max_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="norm_present", min_value=1e-12, strict_min=True),
        ])
        for (cfg, ok, idx), check, reason in zip(res, ("finite", "nonzero"),
                                                ("embedding has NaN or infinite values", "embedding is all zeros")):
            examples = [f"{where}, row {i + 1} (item '{item_ids[i]}'), column '{view}': {reason}" for i in idx[:20]]
            checks.append(CheckResult(view, check, view, ok, len(idx), examples, reason))
            rejects.extend({"table": f"embeddings:{view}", "file": subject, "row": i + 1, "column": view,
                            "check": check, "reason": reason, "record": json.dumps({"item_id": item_ids[i]})} for i in idx)
    ids_pd = pd.DataFrame({"item_id": item_ids})
    res = run_expectations(ctx, gx, "emb_ids", ids_pd, [gxe.ExpectColumnValuesToBeUnique(column="item_id"),
                                                         gxe.ExpectColumnValuesToNotBeNull(column="item_id")])
    for (cfg, ok, idx), check in zip(res, ("ids_unique", "ids_not_null")):
        checks.append(CheckResult("ids", check, "item_id", ok, len(idx),
                                  [f"{subject}, row {i + 1}, column 'item_id'" for i in idx[:20]], check))
    report = ValidationReport(subject=subject, passed=all(c.success for c in checks), checks=checks,
                              n_rows={"items": n, **{f"{k}_dim": int(v.shape[1]) for k, v in views.items() if v.ndim == 2}},
                              rejected_rows=len(rejects), mode="fail")
    return report, rejected_frame(rejects)


def check_alignment(catalogue_ids: list[str], embedding_ids: list[str]) -> CheckResult:
    """Embedding rows must be the catalogue's items in the catalogue's order."""
    if catalogue_ids == embedding_ids:
        return CheckResult("ids", "aligned_with_catalogue", "item_id", True)
    bad = [i for i, (a, b) in enumerate(zip(catalogue_ids, embedding_ids)) if a != b]
    ex = [f"row {i + 1}: catalogue '{catalogue_ids[i]}' vs embeddings '{embedding_ids[i]}'" for i in bad[:10]]
    if len(catalogue_ids) != len(embedding_ids):
        ex.insert(0, f"{len(catalogue_ids)} catalogue items vs {len(embedding_ids)} embedding rows")
    return CheckResult("ids", "aligned_with_catalogue", "item_id", False, max(len(bad), 1), ex,
                       "embedding rows must follow the catalogue's item order")
