"""Pipeline-level integrity: warm caches give the same SIDs, edited files are re-read, errors name their own run."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

G = "|".join(["0"] * 19)
# repeated and empty titles, as MovieLens and Beauty have: the case that shifted the old cache
TITLES = ["Hamlet (1996)", "Heat (1995)", "Hamlet (1996)", "", "Babe (1995)", "Casino (1995)", "", "Heat (1995)",
          "Fargo (1996)", "Clerks (1994)", "Hamlet (1996)", "Ed Wood (1994)", "Sabrina (1995)", "Nixon (1995)",
          "Balto (1995)", "Sense and Sensibility (1995)", "Get Shorty (1995)", "Copycat (1995)", "Othello (1995)",
          "Dead Man Walking (1995)", "Richard III (1995)", "Jumanji (1995)", "Twelve Monkeys (1995)",
          "Braveheart (1995)"]


def _grouplens(folder, n_users=40, per_user=6, bad_row=False):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for u in range(1, n_users + 1):
        for k, item in enumerate(rng.choice(len(TITLES), per_user, replace=False)):
            lines.append(f"{u}\t{item + 1}\t4\t{880000000 + 1000 * u + k}")
    if bad_row:
        lines.insert(7, "3\t999\t4\t880003999")  # row 8: item 999 is not in u.item
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    (folder / "u.item").write_bytes("".join(f"{i}|{t}|01-Jan-1995||u|{G}\n" for i, t in enumerate(TITLES, 1))
                                    .encode("latin-1"))
    return folder


def _config(tmp_path, data, name):
    cfg = {"run_name": f"{name}-{{date}}-{{time}}", "model": {"name": f"sidkit-{name}"},
           "parameters": {
               "dataset": {"format": "movielens_grouplens", "path": str(data)},
               "validation": {"on_invalid": "fail", "min_text_coverage": 0.5},
               "features": {"text": {"fields": ["title"]}, "image": {"enabled": False},
                            "behaviour": {"enabled": False}, "cache_dir": str(tmp_path / "embedding-cache")},
               "tokenizer": {"method": "rqvae", "input_views": ["text"], "levels": 2, "codebook_size": 8,
                             "latent_dim": 8, "hidden_dims": [32], "epochs": 6, "batch_size": 16, "eval_every": 3},
               "collisions": {"policy": "append_token"},
               "health": {"min_utilization": 0.0, "min_normalized_entropy": 0.0},
               "tracking": {"enabled": False}}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def cli():
    import run

    return run.cli


def _train(cli, config, summary, *extra):
    result = CliRunner().invoke(cli, ["train", "--config", str(config), "--summary", str(summary), *extra])
    return result, json.loads(summary.read_text())


def _artifacts(model, version):
    from zenml.client import Client

    from steps.artifacts import Artifacts

    mv = Client().get_model_version(model, version)
    return mv.get_artifact(Artifacts.SID_TABLE).load(), mv.get_artifact(Artifacts.ITEM_EMBEDDINGS).load()


@pytest.mark.slow
def test_warm_cache_and_no_cache_rerun_give_byte_identical_sids(cli, tmp_path):
    config = _config(tmp_path, _grouplens(tmp_path / "ml"), "determinism")
    first, s1 = _train(cli, config, tmp_path / "s1.json")  # cold embedding cache
    assert first.exit_code == 0, first.output
    second, s2 = _train(cli, config, tmp_path / "s2.json", "--no-cache")  # every step re-runs on a warm cache
    assert second.exit_code == 0, second.output
    (t1, e1), (t2, e2) = _artifacts("sidkit-determinism", s1["model_version"]), \
        _artifacts("sidkit-determinism", s2["model_version"])
    assert s1["model_version"] != s2["model_version"]
    np.testing.assert_array_equal(e1.views["text"], e2.views["text"])
    hamlet = [i for i, t in enumerate(TITLES) if t == "Hamlet (1996)"]
    assert all((e2.views["text"][i] == e2.views["text"][hamlet[0]]).all() for i in hamlet)
    assert not (e2.views["text"][hamlet[0]] == e2.views["text"][1]).all()  # Heat is not Hamlet
    assert t1.frame.equals(t2.frame)
    assert t1.frame.write_csv() == t2.frame.write_csv()
    # a third run served from the step cache still writes and lists its own validation page
    third, s3 = _train(cli, config, tmp_path / "s3.json")
    assert third.exit_code == 0, third.output
    page = [p for p in s3["reports"] if "/validation/" in p]
    assert len(page) == 1 and s3["run_name"] in page[0] and Path(page[0]).exists()


@pytest.mark.slow
def test_a_file_edited_in_place_is_read_again(cli, tmp_path):
    data = _grouplens(tmp_path / "ml")
    config = _config(tmp_path, data, "edited")
    first, s1 = _train(cli, config, tmp_path / "s1.json")
    assert first.exit_code == 0, first.output
    _grouplens(data, n_users=30, bad_row=True)  # 60 lines fewer and one bad row, same path and config
    second, s2 = _train(cli, config, tmp_path / "s2.json")
    assert second.exit_code != 0
    assert s2["status"] == "failed" and "u.data, row 8, column 'item_id'" in s2["error"]
    _grouplens(data, n_users=30)
    third, s3 = _train(cli, config, tmp_path / "s3.json")
    assert third.exit_code == 0, third.output
    assert s3["dataset"]["n_users"] == 30 and s3["dataset"]["content_hash"] != s1["dataset"]["content_hash"]


def test_a_change_to_sidkits_code_invalidates_cached_steps(cli, tmp_path, monkeypatch):
    """ZenML's cache key covers a step's own source, not the library it calls: the training and
    evaluation pipelines add a fingerprint of sidkit/, steps/ and materializers/ to every step's key."""
    from zenml.client import Client
    from zenml.enums import ExecutionStatus

    from pipelines import caching

    def statuses(summary):
        return {s.name: s.status for s in Client().get_pipeline_run(summary["run_id"]).steps.values()}

    config = _config(tmp_path, _grouplens(tmp_path / "ml"), "code-change")
    first, _ = _train(cli, config, tmp_path / "s1.json")
    assert first.exit_code == 0, first.output
    again, s2 = _train(cli, config, tmp_path / "s2.json")
    assert again.exit_code == 0 and statuses(s2)["train_tokenizer"] == ExecutionStatus.CACHED
    monkeypatch.setattr(caching, "library_fingerprint", lambda: "sidkit edited")
    edited, s3 = _train(cli, config, tmp_path / "s3.json")
    assert edited.exit_code == 0 and ExecutionStatus.CACHED not in statuses(s3).values()
    # the fingerprint itself follows every byte of the packages' .py files
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    before = caching.code_fingerprint(tmp_path, ("pkg",))
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    assert caching.code_fingerprint(tmp_path, ("pkg",)) != before


@pytest.mark.slow
def test_a_config_error_never_reports_an_earlier_run(cli, tmp_path):
    config = _config(tmp_path, _grouplens(tmp_path / "ml"), "attribution")
    ok, s1 = _train(cli, config, tmp_path / "s1.json")
    assert ok.exit_code == 0 and s1["run_id"]
    for text in ("", "paramters: {}\n", config.read_text().replace("epochs: 6", "epochs: 0")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        result, s = _train(cli, bad, tmp_path / "bad.json")
        assert result.exit_code == 2
        assert s["run_id"] is None and s["error"].startswith(f"config error: {bad}")
        assert s1["run_id"] not in result.output


@pytest.mark.slow
def test_a_killed_run_is_closed_at_the_next_start_and_latest_skips_its_version(cli, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import mlflow
    from zenml.client import Client

    from pipelines import cli_support
    from pipelines.housekeeping import close_stale_pipeline_runs
    from pipelines.model_versions import resolve_model_version
    from sidkit.locks import ProcessMarker
    from sidkit.tracking import tracking_uri

    data = _grouplens(tmp_path / "ml")
    ok, s1 = _train(cli, _config(tmp_path, data, "killed"), tmp_path / "s1.json")
    assert ok.exit_code == 0, ok.output
    slow = yaml.safe_load(_config(tmp_path, data, "killed").read_text())
    slow["parameters"]["tokenizer"].update(epochs=100_000, eval_every=100_000)
    slow["parameters"]["tracking"] = {"enabled": True, "experiment": "sidkit-killed"}
    (tmp_path / "slow.yaml").write_text(yaml.safe_dump(slow))
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, str(root / "run.py"), "train", "--config", str(tmp_path / "slow.yaml")],
                            cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    mlflow.set_tracking_uri(tracking_uri())
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until the tokenizer is training (its MLflow run is open)
        exp = mlflow.get_experiment_by_name("sidkit-killed")
        if exp and mlflow.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'").shape[0]:
            break
        assert proc.poll() is None, "the slow run ended by itself"
        time.sleep(1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    client = Client()
    stuck = client.list_pipeline_runs(sort_by="desc:created", size=1, pipeline_name="training_pipeline").items[0]
    assert stuck.status.value == "running"
    assert str(resolve_model_version("sidkit-killed", None).name) == s1["model_version"]  # not the killed one
    with pytest.raises(KeyError, match="incomplete"):
        resolve_model_version("sidkit-killed", str(int(s1["model_version"]) + 1))

    closed = close_stale_pipeline_runs(cli_support.MARKER or ProcessMarker())
    assert stuck.name in closed["zenml"] and len(closed["mlflow"]) == 1
    assert client.get_pipeline_run(stuck.id).status.value == "failed"
    assert mlflow.get_run(closed["mlflow"][0]).info.status == "FAILED"


@pytest.mark.slow
def test_bad_data_prints_one_clear_message_and_the_report_path(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    config = _config(tmp_path, _grouplens(tmp_path / "ml", bad_row=True), "clear-errors")

    def run(*flags):
        return subprocess.run([sys.executable, str(root / "run.py"), *flags, "train", "--config", str(config)],
                              cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True,
                              timeout=600)

    quiet = run()
    assert quiet.returncode == 1
    out = quiet.stdout + quiet.stderr
    assert "Traceback" not in out and "Skipping step" not in out
    assert "u.data, row 8, column 'item_id'" in out
    assert "interactions read 241, kept 240, rejected 1" in out
    report = next(line for line in out.splitlines() if line.startswith("report: ")).removeprefix("report: ")
    assert "row 8" in Path(report).read_text()
    assert len([line for line in out.splitlines() if line.strip()]) <= 10, out
    assert "Traceback" in (lambda r: r.stdout + r.stderr)(run("-v"))  # -v shows it all
