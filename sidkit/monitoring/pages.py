"""Self-contained HTML pages for analysts (inline SVG, no scripts, no network): drift summary, offline A/B,
SID quality. Evidently renders its own drift pages; validation reports are sidkit.data.validation's.
Numbers are rounded for reading (4 significant digits, p-values 3); the JSON beside each page has them whole.
"""

from __future__ import annotations

import html
import math

GREEN, RED, GREY = "#1b5e20", "#b00020", "#777"
STYLE = ("body{font-family:sans-serif;margin:2em;max-width:64em}td,th{padding:2px 8px;text-align:left}"
         "table{border-collapse:collapse}tr:nth-child(even){background:#f4f4f4}.num{text-align:right}")


def _num(v, digits: int = 4) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}g}"


def _signed(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:+.4g}"


def _ticks(low: float, high: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [low, high]."""
    span = high - low or 1.0
    step = 10 ** math.floor(math.log10(span / n))
    for mult in (1, 2, 5, 10):
        if span / (step * mult) <= n:
            step *= mult
            break
    start = math.floor(low / step) * step
    return [round(start + i * step, 12) for i in range(int((high - start) / step) + 2) if start + i * step <= high + 1e-12]


def forest_plot(rows: list[dict], width: int = 720) -> str:
    """rows: {label, lift, ci_low, ci_high, judged (bool), note} -> an SVG with a zero line and a labelled axis."""
    values = [v for r in rows if r.get("judged") for v in (r.get("ci_low"), r.get("ci_high"), r.get("lift"))
              if v is not None and math.isfinite(v)]
    bound = max([abs(v) for v in values] + [1e-4]) * 1.1
    left, right, row_h, top = 260, 20, 24, 10
    plot_w = width - left - right
    x = lambda v: left + (v + bound) / (2 * bound) * plot_w  # noqa: E731
    height = top + row_h * len(rows) + 40
    parts = [f"<svg role='img' aria-label='forest plot of lifts' width='{width}' height='{height}' "
             "xmlns='http://www.w3.org/2000/svg' font-family='sans-serif' font-size='12'>"]
    axis_y = top + row_h * len(rows) + 4
    parts.append(f"<line x1='{left}' x2='{width - right}' y1='{axis_y}' y2='{axis_y}' stroke='#333'/>")
    for t in _ticks(-bound, bound):
        parts.append(f"<line x1='{x(t):.1f}' x2='{x(t):.1f}' y1='{axis_y}' y2='{axis_y + 5}' stroke='#333'/>"
                     f"<text x='{x(t):.1f}' y='{axis_y + 18}' text-anchor='middle'>{t:+.3g}</text>")
    parts.append(f"<text x='{left + plot_w / 2:.1f}' y='{axis_y + 34}' text-anchor='middle'>"
                 "lift (challenger - champion), 95% paired-bootstrap interval</text>")
    parts.append(f"<line x1='{x(0):.1f}' x2='{x(0):.1f}' y1='{top - 4}' y2='{axis_y}' stroke='{GREY}' stroke-dasharray='4'/>")
    for k, r in enumerate(rows):
        y = top + k * row_h + row_h / 2
        parts.append(f"<text x='4' y='{y + 4:.1f}'>{html.escape(r['label'])}</text>")
        if not r.get("judged"):
            parts.append(f"<text x='{left + 4}' y='{y + 4:.1f}' fill='{GREY}'>{html.escape(r.get('note') or 'not judged')}</text>")
            continue
        if r.get("ci_low") is not None and r.get("ci_high") is not None:
            parts.append(f"<line x1='{x(r['ci_low']):.1f}' x2='{x(r['ci_high']):.1f}' y1='{y:.1f}' y2='{y:.1f}' "
                         "stroke='#444' stroke-width='2'/>")
        if r.get("lift") is not None and math.isfinite(r["lift"]):
            parts.append(f"<circle cx='{x(r['lift']):.1f}' cy='{y:.1f}' r='4.5' fill='{GREEN if r['lift'] >= 0 else RED}'/>")
    parts.append("</svg>")
    return "".join(parts)


def ab_html(result: dict) -> str:
    """The A/B page: decision and its checks, one forest plot of every metric and popularity stratum
    (strata under the rule's ``min_stratum_users`` shown as not judged), and the numbers."""
    decision, rule = result.get("decision", {}), result.get("rule") or {}
    min_users = int(rule.get("min_stratum_users", 30))
    promote = bool(decision.get("promote"))
    who = f"champion {result.get('champion')} vs challenger {result.get('challenger')}"
    rows, table = [], []
    for name, m in result.get("metrics", {}).items():
        rows.append({"label": f"{name} (all users)", **m, "judged": True})
        table.append((name, "all", m))
        for stratum, r in (result.get("by_popularity", {}).get(name) or {}).items():
            judged = r.get("n_users", 0) >= min_users and r.get("lift") is not None
            rows.append({"label": f"   {name}, {stratum}", **r, "judged": judged,
                         "note": f"not judged (n = {r.get('n_users', 0)} < {min_users})"})
            table.append((name, stratum, r))
    body = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{html.escape(s)}</td><td class='num'>{r.get('n_users', '')}</td>"
        f"<td class='num'>{_num(r.get('champion'))}</td><td class='num'>{_num(r.get('challenger'))}</td>"
        f"<td class='num'>{_signed(r.get('lift'))}</td>"
        f"<td class='num'>[{_signed(r.get('ci_low'))}, {_signed(r.get('ci_high'))}]</td>"
        f"<td class='num'>{_num(r.get('p_value'), 3)}</td>"
        f"<td>{'' if s == 'all' or r.get('n_users', 0) >= min_users else 'not judged'}</td></tr>"
        for n, s, r in table)
    checks = "".join(f"<li style='color:{GREEN if c['passed'] else RED}'>{'PASS' if c['passed'] else 'FAIL'}: "
                     f"{html.escape(c['check'])} (value {_num(c.get('value'))})</li>" for c in decision.get("checks", []))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>A/B: {html.escape(who)}</title>
<style>{STYLE}</style></head><body>
<h1>Offline A/B: {html.escape(who)}</h1>
<h2 id="verdict" style="color:{GREEN if promote else RED}">{'PROMOTE' if promote else 'KEEP CHAMPION'}</h2>
<p>{html.escape(decision.get('reason', ''))}</p><ul>{checks}</ul>
<h2>Lifts</h2>{forest_plot(rows)}
<table><tr><th>metric</th><th>stratum</th><th>users</th><th>champion</th><th>challenger</th><th>lift</th>
<th>95% CI</th><th>p</th><th></th></tr>{body}</table>
<p>Rule: primary {html.escape(str(rule.get('primary', '')))}, min lift {rule.get('min_lift', '')}, significance
{'required' if rule.get('require_significance') else 'not required'} (alpha {rule.get('alpha', '')}), largest
allowed stratum drop {rule.get('max_stratum_drop', '')}, strata judged from {min_users} users.</p>
</body></html>"""


def _bar(value: float, threshold: float | None, lower_is_better: bool = False, width: int = 220,
         scale: float = 1.0) -> str:
    """A gauge: the value as a bar on [0, scale], the threshold as a line."""
    ok = threshold is None or (value <= threshold if lower_is_better else value >= threshold)
    v = max(0.0, min(1.0, value / scale))
    line = "" if threshold is None else (f"<line x1='{threshold / scale * width:.1f}' x2='{threshold / scale * width:.1f}' "
                                         "y1='0' y2='16' stroke='#000' stroke-width='2'/>")
    return (f"<svg width='{width}' height='16' xmlns='http://www.w3.org/2000/svg'><rect width='{width}' height='16' "
            f"fill='#eee'/><rect width='{v * width:.1f}' height='16' fill='{GREEN if ok else RED}'/>{line}</svg>")


def sid_quality_html(quality: dict, thresholds: dict, problems: list[str], title: str) -> str:
    """SID quality against the health gate: per level utilisation and normalised entropy as gauges with the
    gate's thresholds, collision rates before/after resolution, and the verdict."""
    healthy = not problems
    levels = "".join(
        f"<tr><td>{lvl}</td><td>{quality['codebook_sizes'][lvl]}</td>"
        f"<td>{_bar(u, thresholds.get('min_utilization'))} {u:.1%}</td>"
        f"<td>{_bar(h, thresholds.get('min_normalized_entropy'))} {h:.3f}</td>"
        f"<td class='num'>{_num(quality['perplexity'][lvl])}</td><td class='num'>{quality['dead_codes'][lvl]}</td></tr>"
        for lvl, (u, h) in enumerate(zip(quality["utilization"], quality["normalized_entropy"])))
    gate = lambda k: "off" if thresholds.get(k) is None else str(thresholds[k])  # noqa: E731
    why = "".join(f"<li>{html.escape(p)}</li>" for p in problems) or "<li>every check passed</li>"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>SID quality: {html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>SID quality: {html.escape(title)}</h1>
<h2 id="verdict" style="color:{GREEN if healthy else RED}">{'HEALTHY' if healthy else 'UNHEALTHY'}</h2><ul>{why}</ul>
<table><tr><th>items</th><td>{quality['n_items']}</td></tr>
<tr><th>collision rate before resolution</th><td>{quality['collision_rate']:.2%} (gate: {gate('max_collision_rate')})</td></tr>
<tr><th>collision rate after resolution</th><td>{quality['collision_rate_final']:.2%} (gate: {gate('max_collision_rate_final')})</td></tr>
<tr><th>SID length (after resolution)</th><td>{quality['sid_length_final']}</td></tr>
<tr><th>reconstruction loss</th><td>{_num(quality.get('recon_loss'))}</td></tr></table>
<h2>Per level (bars: value; black line: the gate's threshold)</h2>
<table><tr><th>level</th><th>codes</th><th>utilisation (gate {gate('min_utilization')})</th>
<th>normalised entropy (gate {gate('min_normalized_entropy')})</th><th>perplexity</th><th>dead codes</th></tr>{levels}</table>
</body></html>"""


def drift_html(summary: dict, sections: list[str], links: dict[str, str] | None = None,
               name_full_page: bool = False) -> str:
    """The drift summary page: the verdict (ours: the drift gate reads it), reasons, facts, per SID level
    churn and distances next to the threshold each is judged by, links to Evidently's pages."""
    drifted = bool(summary.get("drift_detected"))
    t = summary.get("thresholds") or {}
    cols = [("churn", "churn", None), ("distance", "JS distance", t.get("level_distance")),
            ("new_vs_existing_distance", "new vs existing", t.get("new_vs_existing_distance")),
            ("demand_distance", "demand shift", t.get("popularity_distance"))]
    present = [c for c in cols if any(c[0] in v for v in summary.get("per_level", {}).values())]

    limits = {"churn": t.get("max_sid_churn"), **{k: thr for k, _, thr in cols if k != "churn"}}

    def cell(key: str, value) -> str:
        if value is None or value == "":
            return "<td></td>"
        if not isinstance(value, float):
            return f"<td>{html.escape(str(value))}</td>"
        text = f"{value:.1%}" if key == "churn" else f"{value:.3f}"
        limit = limits.get(key)
        if limit is None:
            return f"<td class='num'>{text}</td>"
        # a bar per level against its threshold line (scale: three times the threshold, or the value)
        bar = _bar(value, limit, lower_is_better=True, width=120, scale=min(1.0, max(3 * limit, value)))
        return f"<td class='num'>{text} {bar}</td>"

    rows = "".join(
        f"<tr><td>{html.escape(level)}</td>" + "".join(cell(k, v.get(k, "")) for k, _, _ in present)
        + f"<td style='color:{RED if v.get('drifted') else GREEN}'>{'yes' if v.get('drifted') else 'no'}</td></tr>"
        for level, v in summary.get("per_level", {}).items())
    head = "".join(f"<th>{html.escape(name)}{'' if thr is None else f' (threshold {thr})'}</th>" for _, name, thr in present)
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in summary.get("reasons", [])) or "<li>none</li>"
    links = links or {}
    section_links = "".join(f"<li><a href='{html.escape(links.get(s, s + '.html'))}'>{html.escape(s.replace('_', ' '))}</a></li>"
                            for s in sections)
    facts = [("mode", summary.get("mode")), ("reference", summary.get("reference")), ("current", summary.get("current")),
             ("SID churn", None if summary.get("sid_churn") is None else f"{summary['sid_churn']:.2%}"
              + (f" (threshold {t['max_sid_churn']:.0%})" if "max_sid_churn" in t else "")),
             ("SIDs kept", summary.get("kept_sids")), ("items in both", summary.get("n_common_items")),
             ("new items", summary.get("new_items")), ("created", summary.get("created"))]
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts if v is not None)
    verdict = "DRIFT" if drifted else "no drift"
    # inside the ZenML dashboard's sandboxed frame Evidently's pages do not run: name the full page on disk
    full_page = (f"<p>Full report with Evidently's interactive pages: <code>{html.escape(str(summary['report_html']))}"
                 "</code> (open it from the reports folder)</p>" if name_full_page and summary.get("report_html") else "")
    extra = _agreement_section(summary.get("agreement")) + _moved_section(summary.get("moved_examples")) \
        + _neighbours_section(summary.get("new_item_neighbours"))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>SID drift: {verdict}</title>
<style>{STYLE}</style></head><body>
<h1 id="verdict" style="color:{RED if drifted else GREEN}">SID drift: {verdict}</h1>
<p><b>This verdict is the one that counts</b>: the drift gate reads it. Evidently's pages below apply their own
per-column tests and may say "Dataset Drift is detected" where these thresholds do not (and the reverse).</p>
<table>{fact_rows}</table>
<h2>Why</h2><ul>{reasons}</ul>
<h2>Per SID level</h2>
<p>Levels are code positions; the last one may be the disambiguation token that collision resolution appends.</p>
<table><tr><th>level</th>{head}<th>drifted</th></tr>{rows}</table>
{extra}
<h2>Evidently reports</h2><ul>{section_links or '<li>none (nothing to compare)</li>'}</ul>
{full_page}
</body></html>"""


def _agreement_section(agreement: dict | None) -> str:
    """Label-free agreement of two SID tables per prefix depth (sidkit.monitoring.agreement)."""
    if not agreement:
        return ""
    rows = "".join(f"<tr><td>first {k.split('_')[1]} code(s)</td><td class='num'>{v['nmi']:.3f}</td>"
                   f"<td class='num'>{v['ari']:.3f}</td><td class='num'>{v['groups_reference']}</td>"
                   f"<td class='num'>{v['groups_current']}</td></tr>" for k, v in agreement.items())
    return ("<h2 id='agreement'>Do the two tables group items the same way?</h2>"
            "<p>Code labels of two tokenizers are arbitrary, so this compares groupings, not labels: items that share "
            "a SID prefix form a group. NMI 1 = the same grouping up to relabelling, 0 = unrelated; ARI = agreement of "
            "item pairs (together in both, apart in both), 1 = identical, ~0 = chance.</p>"
            "<table><tr><th>prefix</th><th>NMI</th><th>ARI</th><th>groups (reference)</th><th>groups (current)</th></tr>"
            f"{rows}</table>")


def _moved_section(examples: list[dict] | None) -> str:
    if not examples:
        return ""
    rows = "".join(f"<tr><td>{html.escape(str(e['item_id']))}</td><td>{html.escape(e['reference'])}</td>"
                   f"<td>{html.escape(e['current'])}</td></tr>" for e in examples)
    return ("<h2 id='moved'>Items whose SID changed (a sample)</h2>"
            f"<table><tr><th>item</th><th>reference SID</th><th>current SID</th></tr>{rows}</table>")


def _neighbours_section(n: dict | None) -> str:
    if not n or not n.get("examples"):
        return ""
    rows = "".join(f"<tr><td>{html.escape(str(e['item_id']))}</td><td>{html.escape(e['sid'])}</td><td>"
                   + ", ".join(f"{html.escape(str(x['item_id']))} ({html.escape(x['sid'])})" for x in e["neighbours"])
                   + "</td></tr>" for e in n["examples"])
    return ("<h2 id='new-items'>Where new items landed</h2>"
            f"<p>{n['same_first_code']:.1%} of the {n['n_new']} new items share their first code with their nearest "
            "existing item by content (cosine on the content embedding). A sample, with the 3 nearest existing items:</p>"
            f"<table><tr><th>new item</th><th>SID</th><th>nearest existing items (SID)</th></tr>{rows}</table>")


def trend_svg(months: list[str], series: dict[str, list[float | None]], width: int = 720, height: int = 200) -> str:
    """A month-by-month line chart: one line per series (each scaled to its own maximum, labelled with it),
    months on the x axis. Inline SVG, no scripts."""
    colours = ["#1565c0", "#b00020", "#2e7d32", "#6a1b9a"]
    left, right, top, bottom = 50, 180, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(months), 1)
    x = lambda i: left + (i + 0.5) * plot_w / n  # noqa: E731
    parts = [f"<svg role='img' aria-label='month-by-month trend' width='{width}' height='{height}' "
             "xmlns='http://www.w3.org/2000/svg' font-family='sans-serif' font-size='11'>",
             f"<line x1='{left}' x2='{left + plot_w}' y1='{top + plot_h}' y2='{top + plot_h}' stroke='#333'/>",
             f"<line x1='{left}' x2='{left}' y1='{top}' y2='{top + plot_h}' stroke='#333'/>",
             f"<text x='{left - 6}' y='{top + 8}' text-anchor='end'>max</text>",
             f"<text x='{left - 6}' y='{top + plot_h}' text-anchor='end'>0</text>"]
    for i, m in enumerate(months):
        parts.append(f"<text x='{x(i):.1f}' y='{top + plot_h + 16}' text-anchor='middle'>{html.escape(m)}</text>")
    for k, (name, values) in enumerate(series.items()):
        colour = colours[k % len(colours)]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        top_value = max(finite + [0.0]) or 1.0
        y = lambda v: top + plot_h - v / top_value * plot_h  # noqa: E731
        points = [(x(i), y(v)) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
        if len(points) > 1:
            parts.append(f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='"
                         + " ".join(f"{a:.1f},{b:.1f}" for a, b in points) + "'/>")
        parts += [f"<circle cx='{a:.1f}' cy='{b:.1f}' r='3' fill='{colour}'/>" for a, b in points]
        parts.append(f"<text x='{left + plot_w + 10}' y='{top + 14 + 16 * k}' fill='{colour}'>"
                     f"{html.escape(name)} (max {_num(max(finite)) if finite else 'n/a'})</text>")
    return "".join(parts) + "</svg>"
