"""The analysts' reports folder: one sub-folder per drift report, and an index page.

    <reports_dir>/index.html                      every report, newest first, with its verdict
    <reports_dir>/<stamp>-<name>/index.html       the summary page (verdict, reasons, per level)
    <reports_dir>/<stamp>-<name>/<section>.html   Evidently's reports (sampled rows)
    <reports_dir>/<stamp>-<name>/summary.json     the summary; evidently/<section>.json the full results

The default folder is ``<state dir>/reports/drift`` (settings.state_dir, i.e. $SIDKIT_HOME).
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timezone
from pathlib import Path

from sidkit.monitoring.drift import DriftResult, summary_html
from sidkit.settings import state_dir


def default_reports_dir() -> Path:
    return state_dir() / "reports" / "drift"


def publish_report(result: DriftResult, name: str, reports_dir: str | Path | None = None,
                   created: datetime | None = None) -> Path:
    """Write the report into the folder and refresh the index; returns the report's summary page."""
    root = Path(reports_dir) if reports_dir else default_reports_dir()
    created = created or datetime.now(timezone.utc)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "report"
    folder = root / f"{created.strftime('%Y%m%dT%H%M%S')}-{slug}"
    k = 1
    while folder.exists():
        k += 1
        folder = root / f"{created.strftime('%Y%m%dT%H%M%S')}-{slug}-{k}"
    (folder / "evidently").mkdir(parents=True)
    summary = {**result.summary, "name": name, "created": created.isoformat(timespec="seconds")}
    for section, page in result.evidently_html.items():
        (folder / f"{section}.html").write_text(page, encoding="utf-8")
    for section, data in result.evidently_json.items():
        (folder / "evidently" / f"{section}.json").write_text(json.dumps(data), encoding="utf-8")
    page = folder / "index.html"
    summary["report_html"] = str(page.resolve())
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    page.write_text(summary_html(summary, list(result.evidently_html)), encoding="utf-8")
    write_index(root)
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
