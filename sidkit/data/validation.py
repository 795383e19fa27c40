"""Data validation with Great Expectations (GX Core 1.x), called directly.

Nothing is fixed silently. Every check is a GX expectation run on the canonical
frames (converted to pandas; GX has no polars source); the failing rows are mapped
back to their source file, row and column through the ``_file``/``_row`` provenance
columns. The outcome is a :class:`ValidationReport` (JSON + HTML) and a quarantine
frame holding every rejected row with the reason.

``on_invalid``
    ``"fail"`` (default): any rejected row fails the run (see :func:`raise_for_report`).
    ``"quarantine"``: rejected rows are removed from the validated catalogue, kept in
    the quarantine artifact and counted in the report; the checks are then re-run
    until no new row is rejected (removing an item also rejects its interactions).
"""

from __future__ import annotations

import html
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict

from sidkit.data.schema import INTERACTION_SCHEMA, ITEM_SCHEMA, PROVENANCE, Catalogue, rejected_frame
from sidkit.errors import ConfigError, DataValidationError

log = logging.getLogger(__name__)


class ValidationRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on_invalid: str = "fail"              # "fail" | "quarantine"
    min_user_interactions: int = 3        # leave-one-out needs train + valid + test
    min_item_interactions: int = 0        # 0: cold items (no interaction) are legitimate
    min_text_coverage: float = 0.9        # share of items that must have some text
    rating_range: tuple[float, float] | None = None


@dataclass
class CheckResult:
    table: str
    check: str
    column: str | None
    success: bool
    n_failed: int = 0
    examples: list[str] = field(default_factory=list)
    detail: str = ""


@dataclass
class ValidationReport:
    subject: str
    passed: bool
    checks: list[CheckResult]
    n_rows: dict[str, int]
    rejected_rows: int
    mode: str
    warnings: list[str] = field(default_factory=list)
    accounting: dict[str, dict[str, int]] = field(default_factory=dict)  # per table: read, kept, quarantined, excluded
    html_path: str | None = None  # where :meth:`save` wrote the report for people to open
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    engine: str = "great_expectations"

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "ValidationReport":
        d = dict(d)
        d["checks"] = [CheckResult(**c) for c in d["checks"]]
        return cls(**d)

    def failure_message(self, limit: int = 5) -> str:
        failed = [c for c in self.checks if not c.success]
        lines = [f"validation of {self.subject} failed: {self.rejected_rows} row(s) rejected by "
                 f"{len(failed)} check(s)"]
        for c in failed:
            col = f" column '{c.column}'" if c.column else ""
            lines.append(f"- [{c.table}] {c.check}{col}: {c.n_failed} failing; {c.detail}")
            lines.extend(f"    {e}" for e in c.examples[:limit])
        if self.accounting:
            lines.append("rows: " + self.accounting_line())
        if self.html_path:
            lines.append(f"report: {self.html_path}")
        lines.append("Rejected rows and reasons are in the quarantine artifact; fix the source data "
                     "or set validation.on_invalid: quarantine to continue without them.")
        return "\n".join(lines)

    def save(self, folder: str | os.PathLike) -> str:
        """Write ``report.json`` and ``report.html`` into ``folder``; returns the HTML path."""
        from pathlib import Path

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        self.html_path = str((out / "report.html").resolve())
        (out / "report.json").write_text(self.to_json(), encoding="utf-8")
        (out / "report.html").write_text(self.to_html(), encoding="utf-8")
        return self.html_path

    def accounting_line(self) -> str:
        verb = "quarantined" if self.mode == "quarantine" else "rejected"
        return "; ".join(f"{t} read {a['read']}, kept {a['kept']}, {verb} {a['quarantined']}"
                         + (f", excluded by the snapshot {a['excluded']}" if a["excluded"] else "")
                         for t, a in self.accounting.items())

    def to_html(self) -> str:
        rows = []
        for c in self.checks:
            colour = "#1b7f3b" if c.success else "#b00020"
            ex = "<br>".join(html.escape(e) for e in c.examples[:10])
            rows.append(f"<tr><td>{html.escape(c.table)}</td><td>{html.escape(c.check)}</td>"
                        f"<td>{html.escape(c.column or '')}</td><td style='color:{colour}'>"
                        f"{'pass' if c.success else 'FAIL'}</td><td>{c.n_failed}</td>"
                        f"<td>{html.escape(c.detail)}</td><td><small>{ex}</small></td></tr>")
        warn = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
        verdict = "PASSED" if self.passed else "FAILED"
        return (f"<html><head><meta charset='utf-8'><title>Validation: {html.escape(self.subject)}</title>"
                "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
                "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}</style></head><body>"
                f"<h2>Validation of {html.escape(self.subject)}: {verdict}</h2>"
                f"<p>{self.created_at} &middot; engine: {self.engine} &middot; mode: {self.mode} &middot; "
                f"rows: {html.escape(json.dumps(self.n_rows))} &middot; rejected rows: {self.rejected_rows}</p>"
                + (f"<p>Every row read is accounted for: {html.escape(self.accounting_line())}</p>"
                   if self.accounting else "")
                + (f"<h3>Warnings</h3><ul>{warn}</ul>" if warn else "")
                + "<table><tr><th>table</th><th>check</th><th>column</th><th>result</th><th>failing</th>"
                "<th>detail</th><th>examples (file, row)</th></tr>" + "".join(rows) + "</table></body></html>")


# ------------------------------------------------------------------ GX plumbing

def gx_context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("great_expectations"):
            logging.getLogger(name).setLevel(logging.WARNING)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return gx, gxe, ctx


def run_expectations(ctx, gx, name: str, frame, expectations: list) -> list[tuple[Any, list[int]]]:
    """Validate a pandas frame; returns (expectation config, failing row indices) per expectation."""
    src = ctx.data_sources.add_pandas(f"src_{name}")
    batch = (src.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
             .get_batch(batch_parameters={"dataframe": frame}))
    res = batch.validate(gx.ExpectationSuite(name, expectations=expectations),
                         result_format={"result_format": "COMPLETE"})
    out = []
    for r in res.results:
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise DataValidationError(f"GX could not run {r.expectation_config.type} on {name}: "
                                      f"{r.exception_info.get('exception_message')}")
        idx = [] if r.success else list(r.result.get("unexpected_index_list") or [])
        out.append((r.expectation_config, r.success, idx))
    return out


def _where(frame: pl.DataFrame, i: int, column: str | None) -> str:
    f, row = frame["_file"][i], frame["_row"][i]
    fld = frame["_field"][i] if "_field" in frame.columns else None
    col = f", column '{column}'" if column else ""
    item = f" (entry {fld} of the line)" if fld is not None else ""
    return f"{f}, row {row if row is not None else '?'}{item}{col}"


# ------------------------------------------------------------------ catalogue

def _catalogue_checks(cat: Catalogue, rules: ValidationRules, ctx, gx, gxe, tag: str):
    """(check results, rejected rows as dicts) for one pass."""
    checks: list[CheckResult] = []
    rejects: list[dict] = []
    items, inter = cat.items, cat.interactions

    def record(table, frame, check, column, success, idx, reason, detail=""):
        examples = [f"{_where(frame, i, column)}: {reason}" for i in idx[:20]]
        checks.append(CheckResult(table, check, column, success, len(idx), examples, detail or reason))
        for i in idx:
            row = frame.row(i, named=True)
            rejects.append({"table": table, "file": row["_file"], "row": row["_row"], "field": row.get("_field"),
                            "column": column,
                            "check": check, "reason": reason,
                            "record": json.dumps({k: v for k, v in row.items() if not k.startswith("_")}, default=str)})

    # schema: every canonical column exists with the right dtype (the loaders guarantee it;
    # a hand-built catalogue may not)
    for table, frame, schema in (("items", items, ITEM_SCHEMA), ("interactions", inter, INTERACTION_SCHEMA)):
        for col, dtype in schema.items():
            ok = col in frame.columns and frame.schema[col] == dtype
            if not ok:
                checks.append(CheckResult(table, "schema", col, False, frame.height, [],
                                          f"column must exist with dtype {dtype}"))
        if any(not c.success and c.check == "schema" for c in checks):
            return checks, rejects, True

    item_pd = items.select("item_id", "title", "description", "attributes").to_pandas()
    counts = inter.group_by("user_id").len().rename({"len": "user_n"})
    item_counts = inter.group_by("item_id").len().rename({"len": "item_n"})
    inter_x = inter.join(counts, on="user_id", how="left", maintain_order="left")
    inter_pd = inter_x.select("user_id", "item_id", "position", "rating", "user_n").to_pandas()
    item_ids = items["item_id"].drop_nulls().unique().to_list()

    item_exp = [gxe.ExpectColumnValuesToNotBeNull(column="item_id"),
                gxe.ExpectColumnValuesToBeUnique(column="item_id")]
    item_pd = item_pd.assign(item_n=items.join(item_counts, on="item_id", how="left", maintain_order="left")["item_n"]
                             .fill_null(0).to_numpy())
    item_exp.append(gxe.ExpectColumnValuesToBeBetween(column="item_n", min_value=rules.min_item_interactions))
    res = run_expectations(ctx, gx, f"items_{tag}", item_pd, item_exp)
    reasons = ["item_id is empty", "item_id is not unique",
               f"item has fewer than {rules.min_item_interactions} interaction(s)"]
    names = ["not_null", "unique", "min_item_interactions"]
    for (cfg, ok, idx), reason, name in zip(res, reasons, names):
        record("items", items, name, "item_id", ok, idx, reason)

    inter_exp = [gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
                 gxe.ExpectColumnValuesToNotBeNull(column="item_id"),
                 gxe.ExpectColumnValuesToBeInSet(column="item_id", value_set=item_ids),
                 gxe.ExpectColumnValuesToBeBetween(column="user_n", min_value=rules.min_user_interactions)]
    reasons = ["user_id is empty", "item_id is empty", "item does not exist in the items table",
               f"user has fewer than {rules.min_user_interactions} interactions"]
    names = ["not_null", "not_null", "item_exists", "min_user_interactions"]
    columns = ["user_id", "item_id", "item_id", "user_id"]
    if rules.rating_range is not None:
        lo, hi = rules.rating_range
        inter_exp.append(gxe.ExpectColumnValuesToBeBetween(column="rating", min_value=lo, max_value=hi))
        reasons.append(f"rating outside [{lo}, {hi}]")
        names.append("rating_range")
        columns.append("rating")
    res = run_expectations(ctx, gx, f"interactions_{tag}", inter_pd, inter_exp)
    for (cfg, ok, idx), reason, name, col in zip(res, reasons, names, columns):
        record("interactions", inter, name, col, ok, idx, reason)
    return checks, rejects, False


def validate_catalogue(cat: Catalogue, rules: ValidationRules | dict | None = None
                       ) -> tuple[ValidationReport, pl.DataFrame, Catalogue]:
    """(report, quarantine, validated catalogue). Never raises for bad data: see :func:`raise_for_report`."""
    rules = rules if isinstance(rules, ValidationRules) else ValidationRules.model_validate(rules or {})
    if rules.on_invalid not in ("fail", "quarantine"):
        raise ConfigError(f"validation.on_invalid must be 'fail' or 'quarantine', got {rules.on_invalid!r}")
    gx, gxe, ctx = gx_context()
    all_checks: list[CheckResult] = []
    quarantine = [cat.rejected] if cat.rejected.height else []
    if cat.rejected.height:
        for (table, col), grp in cat.rejected.group_by(["table", "column"], maintain_order=True):
            all_checks.append(CheckResult(table, "parse", col, False, grp.height,
                                          [f"{r['file']}, row {r['row']}" + (f", column '{r['column']}'" if r["column"] else "")
                                           + f": {r['reason']}" for r in grp.head(20).iter_rows(named=True)],
                                          "row could not be parsed"))
    current = cat
    structural = False
    for round_ in range(10):
        checks, rejects, structural = _catalogue_checks(current, rules, ctx, gx, gxe, f"r{round_}")
        all_checks.extend(c for c in checks if round_ == 0 or not c.success)
        if structural or not rejects or rules.on_invalid == "fail":
            if rejects:
                quarantine.append(rejected_frame(rejects))
            break
        rq = rejected_frame(rejects)
        quarantine.append(rq)
        current = _without(current, rq)
    q = pl.concat(quarantine) if quarantine else rejected_frame()
    q = q.unique(subset=["table", "file", "row", "column", "check", "record"], maintain_order=True)

    warnings = []
    if not structural:
        has_text = current.items.select(pl.any_horizontal(
            [pl.col(c).fill_null("").str.strip_chars() != "" for c in ("title", "description", "attributes")]))
        n_text = int(has_text.to_series().sum())
        coverage = n_text / max(current.items.height, 1)
        if current.items.height - n_text:
            warnings.append(f"{current.items.height - n_text} item(s) have no text at all; their text view is masked")
        cov_ok = coverage >= rules.min_text_coverage
        all_checks.append(CheckResult("items", "text_coverage", "title", cov_ok, 0 if cov_ok else current.items.height - n_text,
                                      [], f"{coverage:.3f} of items have text (minimum {rules.min_text_coverage})"))
    if not structural and current.interactions.is_empty():
        structural = True
        all_checks.append(CheckResult("interactions", "not_empty", None, False, 0, [],
                                      "no interaction is left to learn from (the catalogue has zero interactions)"))
    accounting = account_rows(cat, q, current if rules.on_invalid == "quarantine" else None)
    n_rejected = q.height
    failed_checks = any(not c.success for c in all_checks)
    passed = (not failed_checks) if rules.on_invalid == "fail" else (not structural and all(
        c.success for c in all_checks if c.check in ("schema", "text_coverage")))
    if rules.on_invalid == "quarantine" and n_rejected:
        warnings.append(f"{n_rejected} row(s) quarantined and excluded from the validated catalogue")
    report = ValidationReport(subject=f"catalogue '{cat.name}'", passed=passed, checks=all_checks,
                              n_rows={"items": cat.items.height, "interactions": cat.interactions.height},
                              rejected_rows=n_rejected, mode=rules.on_invalid, warnings=warnings, accounting=accounting)
    validated = current if rules.on_invalid == "quarantine" else cat
    validated = Catalogue(validated.name, validated.items, validated.interactions, rejected_frame(), validated.source,
                          dict(cat.rows_read), dict(cat.rows_excluded))
    return report, q, validated


def _without(cat: Catalogue, rejected: pl.DataFrame) -> Catalogue:
    """The catalogue minus rejected rows (matched by provenance), and interactions of rejected items."""
    def drop(frame, table):
        keys = [k for k in PROVENANCE if k in frame.columns]
        r = (rejected.filter(pl.col("table") == table)
             .select(pl.col("file").alias("_file"), pl.col("row").alias("_row"), pl.col("field").alias("_field"))
             .select(keys).unique())
        return frame.join(r, on=keys, how="anti", nulls_equal=True)

    items = drop(cat.items, "items")
    inter = drop(cat.interactions, "interactions")
    return Catalogue(cat.name, items, inter, cat.rejected, cat.source)


def account_rows(cat: Catalogue, quarantine: pl.DataFrame, kept: Catalogue | None) -> dict[str, dict[str, int]]:
    """Per table: rows ``read`` by the loader, ``kept``, ``quarantined`` (distinct rows), ``excluded`` (snapshot).

    ``kept`` is the validated catalogue's rows (quarantine mode) or the parsed rows that no check rejected
    (fail mode, where any rejection stops the run). ``read = kept + quarantined + excluded`` must hold;
    :func:`raise_for_report` refuses a report where it does not.
    """
    out = {}
    for table in ("items", "interactions"):
        parsed = getattr(cat, table).height
        quarantined = quarantine.filter(pl.col("table") == table).select("file", "row", "field").unique().height
        parse_rejects = cat.rejected.filter(pl.col("table") == table).select("file", "row", "field").unique().height
        excluded = cat.rows_excluded.get(table, 0)
        read = cat.rows_read.get(table, parsed + parse_rejects + excluded)
        # fail mode removes nothing: kept = the parsed rows no check rejected (checks the loader's counts)
        n_kept = getattr(kept, table).height if kept is not None else parsed - (quarantined - parse_rejects)
        out[table] = {"read": read, "kept": n_kept, "quarantined": quarantined, "excluded": excluded}
    return out


def unaccounted_rows(report: ValidationReport) -> list[str]:
    """Tables whose counts do not add up (a row went missing without a quarantine entry)."""
    return [f"{t}: read {a['read']} != kept {a['kept']} + quarantined {a['quarantined']} + excluded {a['excluded']}"
            for t, a in report.accounting.items() if a["read"] != a["kept"] + a["quarantined"] + a["excluded"]]


def raise_for_report(report: ValidationReport) -> None:
    lost = unaccounted_rows(report)
    if lost:
        raise DataValidationError(f"validation of {report.subject}: rows are unaccounted for ({'; '.join(lost)}); "
                                  "this is a bug in sidkit, please report it with the validation report")
    if not report.passed:
        raise DataValidationError(report.failure_message())
