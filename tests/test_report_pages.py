"""The analysts' pages: one folder per report, an overview of every kind, readable A/B and SID-quality pages."""

import json
import re
from datetime import datetime, timezone

import numpy as np

from sidkit.evaluation.ab import DecisionRule, compare
from sidkit.evaluation.downstream import PerUser
from sidkit.evaluation.sid_quality import HealthThresholds, health_violations, sid_quality
from sidkit.monitoring.pages import ab_html, sid_quality_html
from sidkit.monitoring.reports import publish_page, run_reports, write_overview


def _comparison(n_small: int = 2) -> dict:
    rng = np.random.default_rng(0)
    strata = np.array(["head"] * 300 + ["torso"] * 200 + ["tail"] * n_small)
    n = len(strata)
    champion = PerUser(strata, auc=rng.uniform(0.5, 0.8, n), weight=np.full(n, 10.0))
    challenger = PerUser(strata, auc=champion.auc + 0.01 + rng.normal(0, 0.02, n), weight=np.full(n, 10.0))
    result = compare({"ranking": champion}, {"ranking": challenger}, DecisionRule(n_bootstrap=200))
    return {**result, "champion": "3", "challenger": "4"}


def test_ab_page_has_a_labelled_forest_plot_and_does_not_judge_tiny_strata():
    page = ab_html(_comparison())
    assert 'id="verdict"' in page and ("PROMOTE" in page or "KEEP CHAMPION" in page)
    assert "<svg" in page and "lift (challenger - champion)" in page          # an axis title
    ticks = re.findall(r"text-anchor='middle'>([+-][0-9.e-]+)</text>", page)
    assert len(ticks) >= 3                                                   # tick labels on the axis
    assert "gauc, tail" in page and "not judged (n = 2 &lt; 30)" in page     # 2 users: shown, not judged
    assert "gauc, head" in page and "gauc, torso" in page
    assert not re.search(r"\d\.\d{8,}", page)                                # no 17-digit numbers
    assert "champion 3 vs challenger 4" in page


def test_sid_quality_page_shows_each_level_against_the_gate():
    codes = np.stack([np.arange(200) % 16, np.zeros(200, int)], 1)          # level 1 collapsed onto one code
    q = sid_quality(codes, None, [16, 16])
    gate = HealthThresholds()
    problems = health_violations(q, gate)
    page = sid_quality_html(q.to_dict(), vars(gate), problems, "shop v2")
    assert "UNHEALTHY" in page and "level 1" in page and problems
    assert page.count("<svg") == 4 and "stroke='#000'" in page                # 2 levels x 2 gauges, threshold lines
    healthy = sid_quality(np.stack([np.arange(200) % 16, np.arange(200) // 16], 1), None, [16, 16])
    assert "HEALTHY" in sid_quality_html(healthy.to_dict(), vars(gate), [], "shop v3")


def test_every_report_kind_is_listed_in_one_overview_and_found_by_run(tmp_path):
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ab = publish_page("ab", "shop-v3-vs-v4", ab_html(_comparison()),
                      {"model": "shop", "versions": {"champion": "3", "challenger": "4"}, "verdict": "keep champion",
                       "ok": False, "run_name": "run-a"}, root=tmp_path, created=t0)
    publish_page("sid_quality", "shop v4", "<html>q</html>", {"model": "shop", "versions": {"version": "4"},
                                                               "verdict": "healthy", "ok": True, "run_name": "run-a"},
                 root=tmp_path, created=t0)
    (tmp_path / "drift" / "x").mkdir(parents=True)
    (tmp_path / "drift" / "x" / "summary.json").write_text(json.dumps(
        {"name": "shop drift", "created": "2026-01-02T00:00:00+00:00", "drift_detected": True, "reference": "shop v3",
         "current": "shop v4", "run_name": "run-b"}))
    (tmp_path / "validation" / "run-a").mkdir(parents=True)
    (tmp_path / "validation" / "run-a" / "report.json").write_text(json.dumps({"passed": True, "rejected_rows": 2}))
    index = write_overview(tmp_path).read_text()
    for text in ("offline A/B", "SID quality", "SID drift", "data validation", "champion: 3, challenger: 4",
                 "reference: shop v3, current: shop v4", "DRIFT", "passed, 2 row(s) rejected"):
        assert text in index, text
    assert index.index("SID drift") < index.index("offline A/B")               # newest first
    found = run_reports("run-a", tmp_path)
    assert str(ab.resolve()) in found and len(found) == 3                      # A/B, SID quality, validation
    assert all(p.endswith(".html") for p in found)


RED_FILL = "fill='#b00020'"


def test_drift_page_says_which_verdict_counts_and_shows_each_level_against_its_threshold():
    from sidkit.monitoring.pages import drift_html

    summary = {"mode": "tokenizers", "reference": "shop v2 (champion)", "current": "shop v3 (this run)",
               "drift_detected": True, "reasons": ["SID churn 12.5% > 5.0%"], "sid_churn": 0.125, "kept_sids": 175,
               "n_common_items": 200, "thresholds": {"max_sid_churn": 0.05, "level_distance": 0.1},
               "per_level": {"sid_0": {"churn": 0.125, "distance": 0.1234567891, "drifted": True}}}
    page = drift_html(summary, ["sid_levels"])
    assert "SID drift: DRIFT" in page and "the one that counts" in page
    assert "shop v2 (champion)" in page and "12.50% (threshold 5%)" in page
    assert "JS distance (threshold 0.1)" in page and "0.123 <svg" in page and "12.5% <svg" in page
    assert "Full report with" not in page                                   # the page itself needs no pointer
    assert "Full report with" in drift_html({**summary, "report_html": "/r/index.html"}, [], name_full_page=True)
    # each value is drawn as a bar against its threshold line: red above the threshold
    level_row = page[page.index("<td>sid_0</td>"):]
    assert level_row.count("<line") >= 2 and RED_FILL in level_row
    assert "href='sid_levels.html'" in page


def test_the_overview_draws_the_month_by_month_trend_of_snapshot_drift(tmp_path):
    def drift(folder, month, created, churn, new, demand, drifted=False, model="shop", mode="snapshots"):
        (tmp_path / "drift" / folder).mkdir(parents=True)
        (tmp_path / "drift" / folder / "summary.json").write_text(json.dumps(
            {"name": folder, "created": created, "mode": mode, "model": model, "drift_detected": drifted,
             "sid_churn": churn, "new_items": new, "snapshot_months": {"reference": "x", "current": month},
             "per_level": {"sid_0": {"demand_distance": demand}, "sid_1": {"demand_distance": demand / 2}}}))

    drift("a", "1997-11", "2026-01-01T00:00:00+00:00", 0.0, 178, 0.12)
    drift("b", "1997-12", "2026-01-02T00:00:00+00:00", 0.0, 76, 0.08)
    drift("c", "1997-12", "2026-01-03T00:00:00+00:00", 0.02, 75, 0.09, drifted=True)   # a re-run of that month wins
    drift("d", "1997-10", "2026-01-04T00:00:00+00:00", 0.0, 0, 0.0, mode="tokenizers")  # not a snapshot comparison
    index = write_overview(tmp_path).read_text()
    trend = index[index.index("Month by month: shop"):index.index("Every report")]
    assert trend.index("1997-11") < trend.index("1997-12") and "1997-10" not in trend
    assert "<polyline" in trend and "new items (max 178)" in trend
    assert "drift/c/index.html" in trend and "drift/b/index.html" not in trend
    assert "2.0%" in trend and "0.090" in trend


def test_last_month_of_a_snapshot():
    import polars as pl

    from sidkit.data.snapshots import last_month

    assert last_month(pl.DataFrame({"timestamp": [883612800 - 1, None, 875000000]})) == "1997-12"
    assert last_month(pl.DataFrame({"timestamp": pl.Series([None], dtype=pl.Int64)})) is None
    assert last_month(pl.DataFrame({"item_id": ["a"]})) is None
