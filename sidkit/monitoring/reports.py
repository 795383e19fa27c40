"""The analysts' reports folder: every report a run writes, one self-contained page each, and indexes.

    <reports>/index.html                                  every report of every kind, newest first
    <reports>/drift/index.html                            the drift reports, with verdict and churn
    <reports>/drift/<stamp>-<name>/index.html             a drift summary page (+ Evidently's pages beside it)
    <reports>/ab/<stamp>-<name>/index.html                an offline A/B (forest plot, per stratum)
    <reports>/sid_quality/<stamp>-<name>/index.html       SID quality against the health gate
    <reports>/validation/<run name>/report.html           a data validation report
    .../summary.json                                      what the indexes list (kind, model, versions, verdict, run)

``<reports>`` is ``<state dir>/reports`` (settings.state_dir, i.e. $SIDKIT_HOME); a drift config's
``reports_dir`` moves the drift pages only. Pages are plain HTML with inline SVG: no network.
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timezone
from pathlib import Path

from sidkit.monitoring.drift import DriftResult
from sidkit.monitoring.pages import drift_html, trend_svg
from sidkit.settings import state_dir


KINDS = {"drift": "SID drift", "ab": "offline A/B", "sid_quality": "SID quality", "validation": "data validation"}


def reports_root() -> Path:
    return state_dir() / "reports"


def default_reports_dir() -> Path:
    return reports_root() / "drift"


def _new_folder(parent: Path, name: str, created: datetime) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "report"
    folder = parent / f"{created.strftime('%Y%m%dT%H%M%S')}-{slug}"
    k = 1
    while folder.exists():
        k += 1
        folder = parent / f"{created.strftime('%Y%m%dT%H%M%S')}-{slug}-{k}"
    folder.mkdir(parents=True)
    return folder


def publish_page(kind: str, name: str, page: str, facts: dict, root: str | Path | None = None,
                 created: datetime | None = None) -> Path:
    """Write one report page (``kind`` in KINDS) with its summary.json and refresh the overview.
    ``facts``: what the overview shows -- ``model``, ``versions`` (dict), ``verdict``, ``ok`` (bool), ``run_name``."""
    if kind not in KINDS:
        raise ValueError(f"report kind must be one of {sorted(KINDS)}, got {kind!r}")
    root = Path(root) if root else reports_root()
    created = created or datetime.now(timezone.utc)
    folder = _new_folder(root / kind, name, created)
    path = folder / "index.html"
    summary = {**facts, "kind": kind, "name": name, "created": created.isoformat(timespec="seconds"),
               "report_html": str(path.resolve())}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    path.write_text(page, encoding="utf-8")
    write_overview(root)
    return path


def _entries(root: Path) -> list[dict]:
    """Every report under ``root``: summary.json of drift / ab / sid_quality, report.json of validation."""
    out = []
    for kind in KINDS:
        for path in sorted((root / kind).glob("*/summary.json")):
            try:
                s = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                s = {"name": path.parent.name, "verdict": "unreadable summary.json", "ok": False}
            if kind == "drift":
                s = {**s, "verdict": "DRIFT" if s.get("drift_detected") else "no drift", "ok": not s.get("drift_detected"),
                     "versions": {"reference": s.get("reference"), "current": s.get("current")}}
            out.append({**s, "kind": kind, "href": f"{kind}/{path.parent.name}/index.html"})
        if kind == "validation":
            for path in sorted((root / kind).glob("*/report.json")):
                try:
                    r = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    r = {}
                created = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
                out.append({"kind": kind, "name": r.get("subject") or path.parent.name, "created": created,
                            "run_name": path.parent.name, "ok": bool(r.get("passed")),
                            "verdict": ("passed" if r.get("passed") else "FAILED")
                            + f", {r.get('rejected_rows', '?')} row(s) rejected",
                            "href": f"{kind}/{path.parent.name}/report.html"})
    return sorted(out, key=lambda e: (e.get("created", ""), e["href"]), reverse=True)


def write_overview(root: Path | None = None) -> Path:
    """``<reports>/index.html``: every report, newest first, with kind, model, versions and verdict."""
    root = Path(root) if root else reports_root()
    entries = _entries(root)
    esc = lambda v: html.escape("" if v is None else str(v))  # noqa: E731
    rows = "".join(
        f"<tr><td>{esc(e.get('created'))}</td><td>{esc(KINDS[e['kind']])}</td>"
        f"<td><a href='{esc(e['href'])}'>{esc(e.get('name'))}</a></td><td>{esc(e.get('model'))}</td>"
        f"<td>{esc(', '.join(f'{k}: {v}' for k, v in (e.get('versions') or {}).items() if v is not None))}</td>"
        f"<td style='color:{'#1b5e20' if e.get('ok') else '#b00020'}'>{esc(e.get('verdict'))}</td>"
        f"<td>{esc(e.get('run_name'))}</td></tr>" for e in entries)
    root.mkdir(parents=True, exist_ok=True)
    index = root / "index.html"
    trend = month_trend(root)
    index.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>sidkit reports</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:left}}
tr:nth-child(even){{background:#f4f4f4}}</style></head><body><h1>sidkit reports</h1>
<p>{len(entries)} report(s), newest first. Drift reports alone, with churn: <a href="drift/index.html">drift/</a>.</p>
{trend}
<h2>Every report</h2>
<table><tr><th>date (UTC)</th><th>kind</th><th>report</th><th>model</th><th>versions</th><th>verdict</th><th>run</th></tr>
{rows}</table></body></html>""", encoding="utf-8")
    return index


def month_trend(root: Path) -> str:
    """Month by month, per model: churn of existing items' SIDs, new items and the demand shift across codes, from
    the snapshot drift reports (the latest report per snapshot month); a chart and the numbers. Empty if none."""
    latest: dict[tuple[str, str], dict] = {}
    for path in sorted((root / "drift").glob("*/summary.json")):
        try:
            s = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        month = (s.get("snapshot_months") or {}).get("current")
        if s.get("mode") != "snapshots" or not month:
            continue
        key = (str(s.get("model") or "model"), month)
        if s.get("created", "") >= latest.get(key, {}).get("created", ""):
            latest[key] = {**s, "href": f"drift/{path.parent.name}/index.html"}
    out = []
    for model in sorted({m for m, _ in latest}):
        months = sorted(month for m, month in latest if m == model)
        rows = [latest[(model, month)] for month in months]
        demand = [max((v.get("demand_distance") or 0.0 for v in r.get("per_level", {}).values()), default=None) for r in rows]
        chart = trend_svg(months, {"SID churn (share of existing items)": [r.get("sid_churn") for r in rows],
                                   "new items": [r.get("new_items") for r in rows],
                                   "demand shift (largest JS distance)": demand})
        table = "".join(
            f"<tr><td>{html.escape(m)}</td><td>{(r.get('sid_churn') or 0):.1%}</td><td>{r.get('new_items', '')}</td>"
            f"<td>{'' if d is None else f'{d:.3f}'}</td><td style='color:{'#b00020' if r.get('drift_detected') else '#1b5e20'}'>"
            f"<a href='{html.escape(r['href'])}'>{'DRIFT' if r.get('drift_detected') else 'no drift'}</a></td></tr>"
            for m, r, d in zip(months, rows, demand))
        out.append(f"<h2>Month by month: {html.escape(model)}</h2>{chart}<table><tr><th>snapshot month</th><th>SID churn</th>"
                   f"<th>new items</th><th>demand shift</th><th>drift report</th></tr>{table}</table>")
    return "".join(out)


def run_reports(run_name: str, root: Path | None = None) -> list[str]:
    """The report pages a pipeline run wrote (by the run name in their summaries), oldest first."""
    root = Path(root) if root else reports_root()
    return [str((root / e["href"]).resolve()) for e in reversed(_entries(root)) if e.get("run_name") == run_name]


def publish_report(result: DriftResult, name: str, reports_dir: str | Path | None = None,
                   created: datetime | None = None) -> Path:
    """Write the report into the folder and refresh the index; returns the report's summary page."""
    root = Path(reports_dir) if reports_dir else default_reports_dir()
    created = created or datetime.now(timezone.utc)
    folder = _new_folder(root, name, created)
    (folder / "evidently").mkdir()
    summary = {**result.summary, "name": name, "created": created.isoformat(timespec="seconds")}
    for section, page in result.evidently_html.items():
        (folder / f"{section}.html").write_text(page, encoding="utf-8")
    for section, data in result.evidently_json.items():
        (folder / "evidently" / f"{section}.json").write_text(json.dumps(data), encoding="utf-8")
    page = folder / "index.html"
    summary["report_html"] = str(page.resolve())
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    page.write_text(drift_html(summary, list(result.evidently_html)), encoding="utf-8")
    write_index(root)
    if root.resolve() == default_reports_dir().resolve():
        write_overview()
    return page


def write_index(root: Path) -> Path:
    entries = []
    for path in root.glob("*/summary.json"):
        try:
            entries.append((path.parent.name, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            entries.append((path.parent.name, {"name": path.parent.name, "reasons": ["unreadable summary.json"]}))
    entries.sort(key=lambda e: (e[1].get("created", ""), e[0]), reverse=True)
    rows = "".join(
        f"<tr><td>{html.escape(s.get('created', ''))}</td>"
        f"<td><a href='{html.escape(d)}/index.html'>{html.escape(s.get('name', d))}</a></td>"
        f"<td style='color:{'#b00020' if s.get('drift_detected') else '#1b5e20'}'>"
        f"{'DRIFT' if s.get('drift_detected') else 'no drift'}</td>"
        f"<td>{html.escape(str(s.get('mode', '')))}</td>"
        f"<td>{s.get('sid_churn', 0):.1%}</td>"
        f"<td>{html.escape('; '.join(s.get('reasons', [])))}</td></tr>"
        for d, s in entries)
    index = root / "index.html"
    root.mkdir(parents=True, exist_ok=True)
    index.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>SID drift reports</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:left}}
tr:nth-child(even){{background:#f4f4f4}}</style></head><body><h1>SID drift reports</h1>
<p>{len(entries)} report(s), newest first.</p>
<table><tr><th>date (UTC)</th><th>report</th><th>verdict</th><th>mode</th><th>SID churn</th><th>why</th></tr>{rows}</table>
</body></html>""", encoding="utf-8")
    return index
