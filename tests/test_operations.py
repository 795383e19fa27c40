"""Operations end to end through the CLI: retraining (append mode), drift, A/B, schedule, lock."""

import json
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

MODEL = "sidkit-tokenizer-ops-test"
SYNTH = {"format": "synthetic", "n_items": 160, "n_users": 300, "n_clusters": 5, "seed": 4, "with_images": False}
RETRAIN = {
    "run_name": "test-retrain-{date}-{time}",
    "model": {"name": MODEL},
    "parameters": {
        "model_name": MODEL,
        "mode": "append",
        "dataset": SYNTH,
        "validation": {"on_invalid": "fail"},
        "features": {"text": {"enabled": True}, "image": {"enabled": False}, "behaviour": {"enabled": False}},
        "tokenizer": {"method": "rqkmeans", "input_views": ["text"], "levels": 3, "codebook_size": 16, "seed": 0},
        "collisions": {"policy": "append_token"},
        "health": {"min_utilization": 0.05, "min_normalized_entropy": 0.1},
        "drift": {"approval": {"default": "reject"}},
        "ab": {"ranking": {"features": "sid", "epochs": 1, "n_eval_negatives": 19},
               "rule": {"primary": "gauc", "min_lift": -0.02, "require_significance": False,
                        "n_bootstrap": 200, "min_stratum_users": 1000}},
        "tracking": {"experiment": "sidkit-ops-test"},
    },
}


def _write(tmp_path: Path, name: str, cfg: dict) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture(scope="module")
def cli():
    import run

    return run.cli


def _retrain(cli, tmp, name: str, dataset: dict, approval: str) -> dict:
    cfg = json.loads(json.dumps(RETRAIN))
    cfg["parameters"]["dataset"] = dataset
    out = tmp / f"{name}.json"
    os.environ["SIDKIT_DRIFT_APPROVAL"] = approval
    try:
        r = CliRunner().invoke(cli, ["retrain", "--config", _write(tmp, f"{name}.yaml", cfg), "--summary", str(out)])
    finally:
        del os.environ["SIDKIT_DRIFT_APPROVAL"]
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def retrain_runs(cli, tmp_path_factory, session_home):
    """1: no champion (full, promoted). 2: 40 new items, append mode, drift approved -> promoted.
    3: append on top of 2 with rewritten item texts, drift rejected -> not promoted."""
    tmp = tmp_path_factory.mktemp("ops")
    s1 = _retrain(cli, tmp, "r1", SYNTH, "reject")
    s2 = _retrain(cli, tmp, "r2", {**SYNTH, "new_items": 40, "popularity_shift": 0.3}, "approve")
    s3 = _retrain(cli, tmp, "r3", {**SYNTH, "new_items": 40, "popularity_shift": 0.3, "content_shift": 0.6}, "reject")
    return s1, s2, s3, tmp


@pytest.mark.slow
def test_first_retraining_promotes_without_a_champion(retrain_runs):
    s1, *_ = retrain_runs
    assert s1["status"] == "succeeded" and s1["champion"] is None
    assert s1["promoted"] and "no champion" in s1["reason"]
    from zenml.client import Client

    mv = Client().get_model_version(MODEL, s1["model_version"])
    assert "no champion" in mv.run_metadata["promotion"]["reason"]


@pytest.mark.slow
def test_append_mode_keeps_published_sids(retrain_runs):
    s1, s2, s3, _ = retrain_runs
    assert s2["champion"] == s1["model_version"] and s2["mode"] == "append"
    assert s2["kept_sids"] == s2["n_common_items"] == 160 and s2["sid_churn"] == 0.0   # 100% kept
    assert s2["new_items"] == 40
    assert s2["drift_detected"] and s2["drift_approved"] is True and s2["promoted"]
    # append on top of an appended champion: all 200 published SIDs kept again
    assert s3["champion"] == s2["model_version"]
    assert s3["kept_sids"] == s3["n_common_items"] == 200 and s3["sid_churn"] == 0.0


@pytest.mark.slow
def test_rejected_drift_blocks_promotion_and_the_report_is_indexed(retrain_runs, session_home):
    _, s2, s3, _ = retrain_runs
    assert s3["drift_detected"] and s3["drift_approved"] is False, json.dumps(s3)[:3000]
    assert "content embedding" in " ".join(s3["drift_reasons"])   # rewritten texts, SIDs kept
    assert not s3["promoted"] and "drift detected and rejected" in s3["reason"]
    from zenml.client import Client
    from zenml.enums import ModelStages

    assert Client().get_model_version(MODEL, ModelStages.PRODUCTION).name == s2["model_version"]
    # the dashboard shows the summary page and Evidently's pages (materializer visualisations)
    run = Client().get_pipeline_run(s3["run_name"])
    report = run.steps["detect_sid_drift"].outputs["sid_drift_report"][0]
    assert len(report.visualizations) >= 2 and all(v.type.value == "html" for v in report.visualizations)
    assert report.run_metadata["drift_detected"] is True
    # the analyst finds the report in the reports folder index
    index = session_home / "reports" / "drift" / "index.html"
    page = Path(s3["report_html"])
    assert page.exists() and page.parent.name in index.read_text() and "DRIFT" in index.read_text()
    # the page names the versions compared, not "reference" / "current"
    summary = run.steps["detect_sid_drift"].outputs["sid_drift_summary"][0].load()
    assert summary["reference"] == f"{MODEL} v{s2['model_version']} (champion)"
    assert summary["current"] == f"{MODEL} v{s3['model_version']} (this run)"
    assert summary["reference"] in page.read_text()


@pytest.mark.slow
def test_drift_cli_between_versions(cli, retrain_runs):
    s1, s2, _, tmp = retrain_runs
    cfg = {"parameters": {"model": MODEL, "approval": {"default": "reject"}}}
    out = tmp / "d.json"
    r = CliRunner().invoke(cli, ["drift", "--config", _write(tmp, "d.yaml", cfg), "--reference", s1["model_version"],
                                 "--current", s2["model_version"], "--summary", str(out), "--fail-on-drift"])
    assert r.exit_code == 3, r.output          # drift found -> exit code 3 with --fail-on-drift
    d = json.loads(out.read_text())
    assert d["drift_detected"] and d["sid_churn"] == 0.0 and Path(d["report_html"]).exists()
    assert set(d["per_level"]) == {"sid_0", "sid_1", "sid_2", "sid_3"}
    assert f"{MODEL} v{s1['model_version']}" in Path(d["report_html"]).read_text()
    assert all({"distance", "drifted", "churn"} <= set(v) for v in d["per_level"].values())
    # the same page in MLflow, beside the drift numbers, in a run named after the pipeline run
    from sidkit.tracking import _mlflow

    client = _mlflow().MlflowClient()
    run = client.get_run(d["reports_mlflow_run_id"])
    assert run.info.run_name == d["run_name"] and run.data.metrics["sid_churn"] == 0.0
    folder = Path(d["report_html"]).parent
    logged = [f.path for f in client.list_artifacts(run.info.run_id, f"reports/drift/{folder.name}")]
    assert {f"reports/drift/{folder.name}/index.html", f"reports/drift/{folder.name}/summary.json"} <= set(logged)
    # and in the stack's artifact store (a remote orchestrator's pod disk does not outlive the pod), every file of
    # the page's folder, the URI in the summary and in the step's metadata
    from zenml.client import Client
    from zenml.io import fileio

    store = Client().active_stack.artifact_store.path.rstrip("/")
    assert d["report_uri"] == f"{store}/sidkit-reports/drift/{folder.name}/index.html"
    for page in folder.rglob("*"):
        if page.is_file():
            with fileio.open(f"{store}/sidkit-reports/drift/{folder.name}/{page.relative_to(folder).as_posix()}", "rb") as f:
                assert f.read() == page.read_bytes()
    step = Client().get_pipeline_run(d["run_name"]).steps["detect_sid_drift"]
    assert step.run_metadata["report_uri"] == d["report_uri"] and d["report_uri"] in d["report_uris"]
    _, _, s3, _ = retrain_runs                  # a retraining run's A/B, SID-quality and validation pages too
    for kind in ("ab", "sid_quality", "validation"):
        page = Path(next(p for p in s3["reports"] if f"/{kind}/" in p))
        assert fileio.exists(f"{store}/sidkit-reports/{kind}/{page.parent.name}/{page.name}"), kind


@pytest.mark.slow
def test_compare_cli_summary(cli, retrain_runs):
    _, s2, s3, tmp = retrain_runs
    cfg = {"parameters": {"model": MODEL, "ranking": {"features": "sid", "epochs": 1, "n_eval_negatives": 19},
                          "rule": {"primary": "gauc", "n_bootstrap": 200, "min_stratum_users": 1000}}}
    out = tmp / "c.json"
    r = CliRunner().invoke(cli, ["compare", "--config", _write(tmp, "c.yaml", cfg), "--challenger", s3["model_version"],
                                 "--summary", str(out)])
    assert r.exit_code == 0, r.output
    c = json.loads(out.read_text())
    assert c["champion"] == s2["model_version"] and c["challenger"] == s3["model_version"]
    g = c["metrics"]["gauc"]
    assert set(g) == {"champion", "challenger", "lift", "ci_low", "ci_high", "p_value"}
    # append mode: the challenger serves exactly the champion's SIDs -> no lift, not significant
    assert g["lift"] == pytest.approx(0.0) and not c["decision"]["promoted"]


@pytest.mark.slow
def test_schedule_on_the_local_orchestrator_refuses_and_gives_a_cron_line(cli, tmp_path):
    out = tmp_path / "s.json"
    cfg = _write(tmp_path, "r.yaml", RETRAIN)
    r = CliRunner().invoke(cli, ["schedule", "--pipeline", "retraining", "--config", cfg, "--cron", "30 2 * * 1",
                                 "--timezone", "Europe/Berlin", "--summary", str(out)])
    assert r.exit_code == 2, r.output
    assert "cannot run schedules" in r.output
    s = json.loads(out.read_text())
    assert s["scheduled"] is False and s["orchestrator_flavor"] == "local"
    lines = s["cron_line"].splitlines()
    assert lines[1] == "CRON_TZ=Europe/Berlin"
    assert lines[2].startswith("30 2 * * 1 cd ") and "run.py retrain --config" in lines[2]
    bad = CliRunner().invoke(cli, ["schedule", "--pipeline", "retraining", "--config", cfg, "--cron", "61 * * * *"])
    assert bad.exit_code == 2 and "outside 0-59" in bad.output
    bad = CliRunner().invoke(cli, ["schedule", "--pipeline", "retraining", "--config", cfg, "--cron", "0 3 * * *",
                                   "--timezone", "Mars/Olympus"])
    assert bad.exit_code == 2 and "unknown time zone" in bad.output


def test_a_second_retraining_of_the_same_model_is_refused(cli, tmp_path):
    from sidkit.locks import exclusive

    out = tmp_path / "s.json"
    with exclusive(f"retraining-{MODEL}", "test holder"):
        r = CliRunner().invoke(cli, ["retrain", "--config", _write(tmp_path, "r.yaml", RETRAIN), "--summary", str(out)])
    assert r.exit_code == 4
    s = json.loads(out.read_text())
    assert s["status"] == "failed" and "already running" in s["error"] and f"pid {os.getpid()}" in s["error"]


def test_lock_is_released_after_use(tmp_path):
    from sidkit.locks import LockHeld, exclusive

    with exclusive("x", "job", tmp_path):
        with pytest.raises(LockHeld):
            with exclusive("x", "job", tmp_path):
                pass
    with exclusive("x", "job", tmp_path):   # free again
        pass


@pytest.mark.slow
def test_compare_respects_a_rejected_drift_gate_unless_forced(cli, retrain_runs):
    """Version 3's drift gate rejected it: a passing A/B alone must not put it in production."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    _, s2, s3, tmp = retrain_runs
    lenient = {"parameters": {"model": MODEL, "ranking": {"features": "sid", "epochs": 1, "n_eval_negatives": 19},
                              "rule": {"primary": "gauc", "min_lift": -1.0, "require_significance": False,
                                       "max_stratum_drop": 1.0, "n_bootstrap": 200, "min_stratum_users": 1000}}}
    cfg = _write(tmp, "lenient.yaml", lenient)

    def compare(*flags):
        out = tmp / "cmp.json"
        r = CliRunner().invoke(cli, ["compare", "--config", cfg, "--challenger", s3["model_version"], "--summary",
                                     str(out), *flags])
        assert r.exit_code == 0, r.output
        return json.loads(out.read_text()), r.output

    production = lambda: str(Client().get_model_version(MODEL, ModelStages.PRODUCTION).name)  # noqa: E731
    c, out = compare()
    assert not c["decision"]["promoted"] and "rejected by the drift gate" in c["decision"]["reason"]
    assert c["production"] == s2["model_version"] == production()
    assert f"in production: version {s2['model_version']}" in out
    c, _ = compare("--force", "--dry-run")
    assert c["decision"]["would_promote"] and not c["decision"]["promoted"] and c["decision"]["dry_run"]
    assert production() == s2["model_version"]  # a dry run changes nothing
    c, out = compare("--force")
    assert c["decision"]["promoted"] and c["decision"]["forced"] and "forced over a rejection" in c["decision"]["reason"]
    assert production() == s3["model_version"] and f"in production: version {s3['model_version']}" in out
    mv = Client().get_model_version(MODEL, s3["model_version"])
    assert mv.run_metadata["promotion"]["forced"] is True


@pytest.mark.slow
def test_drift_refuses_a_version_against_itself(cli, retrain_runs):
    _, s2, _, tmp = retrain_runs
    out = tmp / "same.json"
    r = CliRunner().invoke(cli, ["drift", "--config", _write(tmp, "same.yaml", {"parameters": {"model": MODEL}}),
                                 "--reference", s2["model_version"], "--current", s2["model_version"],
                                 "--summary", str(out)])
    assert r.exit_code == 2 and "the same version" in json.loads(out.read_text())["error"]


def _chromium():
    """Debian's chromium, headless, driven by selenium; skip (with the reason) where the set-up could not install it."""
    import shutil

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("chromium / chromedriver not installed (infra/setup.sh installs them with apt as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.mark.slow
def test_an_analyst_reads_every_report_of_a_real_run_in_a_browser(retrain_runs, session_home):
    """The third retraining (drift rejected): overview, drift, A/B, SID-quality and validation pages in chromium."""
    from selenium.webdriver.common.by import By

    _, s2, s3, _ = retrain_runs
    pages = {kind: next(p for p in s3["reports"] if f"/{kind}/" in p) for kind in ("ab", "sid_quality", "validation")}
    pages["drift"] = s3["report_html"]
    shots = os.environ.get("SIDKIT_SCREENSHOTS")            # set to a folder to refresh README's screenshots
    driver = _chromium()
    try:
        def visit(path: str, name: str) -> str:
            driver.get(Path(path).resolve().as_uri())
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, (name, errors)
            if shots:
                Path(shots).mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(Path(shots) / f"{name}.png"))
            return driver.find_element(By.TAG_NAME, "body").text

        text = visit(session_home / "reports" / "index.html", "reports-index")
        for kind in ("SID drift", "offline A/B", "SID quality", "data validation"):
            assert kind in text, kind
        assert f"{MODEL} v{s2['model_version']} (champion)" in text
        text = visit(pages["drift"], "drift")
        assert "SID drift: DRIFT" in text
        assert f"{MODEL} v{s2['model_version']} (champion)" in text and f"v{s3['model_version']} (this run)" in text
        text = visit(pages["ab"], "ab")
        verdict = driver.find_element(By.ID, "verdict").text
        assert verdict in ("PROMOTE", "KEEP CHAMPION")
        assert f"champion {s2['model_version']} vs challenger {s3['model_version']}" in text
        plot = driver.find_element(By.CSS_SELECTOR, "svg[role='img']")
        assert plot.size["width"] > 300 and plot.size["height"] > 50           # the forest plot is drawn
        assert "not judged (n =" in text                                         # strata under 1000 users
        text = visit(pages["sid_quality"], "sid-quality")
        assert driver.find_element(By.ID, "verdict").text == "HEALTHY"
        assert len(driver.find_elements(By.TAG_NAME, "svg")) >= 2                # gauges per level
        text = visit(pages["validation"], "validation")
        assert "passed" in text.lower()
    finally:
        driver.quit()
