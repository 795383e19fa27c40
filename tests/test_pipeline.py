"""End to end: the training pipeline in a temporary ZenML + MLflow store, via the CLI."""

import json

import pytest
import yaml
from click.testing import CliRunner

TINY = {
    "run_name": "test-train-{date}-{time}",
    "model": {"name": "sidkit-tokenizer-test"},
    "parameters": {
        "dataset": {"format": "synthetic", "n_items": 150, "n_users": 120, "n_clusters": 4, "seed": 5,
                    "missing_image_rate": 0.2},
        "validation": {"on_invalid": "fail"},
        "features": {"behaviour": {"epochs": 2, "dim": 16}},
        "tokenizer": {"method": "rqvae", "input_views": ["text", "image"], "levels": 2, "codebook_size": 16,
                      "latent_dim": 8, "hidden_dims": [64], "epochs": 8, "batch_size": 64, "eval_every": 4},
        "collisions": {"policy": "relocate"},
        "health": {"min_utilization": 0.1},
        "tracking": {"experiment": "sidkit-test"},
    },
}


def _config(tmp_path, **overrides):
    cfg = json.loads(json.dumps(TINY))
    for key, value in overrides.items():
        cfg["parameters"][key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def cli():
    import run

    return run.cli


@pytest.mark.slow
def test_training_pipeline_end_to_end(cli, tmp_path):
    summary_path = tmp_path / "s.json"
    result = CliRunner().invoke(cli, ["train", "--config", str(_config(tmp_path)), "--summary", str(summary_path)])
    assert result.exit_code == 0, result.output
    s = json.loads(summary_path.read_text())
    assert s["status"] == "succeeded"
    assert s["dataset"]["n_items"] == 150 and s["dataset"]["n_users"] == 120
    assert s["tokenizer"]["method"] == "rqvae" and s["tokenizer"]["levels"] == 2
    assert s["tokenizer"]["codebook_size"] == 16 and s["tokenizer"]["input_views"] == ["text", "image"]
    q = s["sid_quality"]
    assert q["collision_rate_final"] == 0 and len(q["utilization"]) == 2 and len(q["perplexity"]) == 2
    assert set(q["recon_loss_per_view"]) == {"text", "image"}
    assert s["validation"] == {"passed": True, "rejected_rows": 0, "mode": "fail"}

    from zenml.client import Client

    from steps.artifacts import Artifacts

    client = Client()
    mv = client.get_model_version("sidkit-tokenizer-test", s["model_version"])
    assert mv.run_metadata["sid_quality"]["collision_rate_final"] == 0
    assert mv.run_metadata["data"]["content_hash"] == s["dataset"]["content_hash"]
    assert "text" in mv.run_metadata["encoders"]
    tok = mv.get_artifact(Artifacts.TOKENIZER).load()
    table = mv.get_artifact(Artifacts.SID_TABLE).load()
    emb = mv.get_artifact(Artifacts.ITEM_EMBEDDINGS).load()
    # the stored tokenizer reproduces the stored SIDs
    import numpy as np

    np.testing.assert_array_equal(tok.encode(emb.matrix(["text", "image"])).codes, table.codes())

    import mlflow

    run = mlflow.get_run(s["mlflow_run_id"])
    assert "final.collision_rate_final" in run.data.metrics
    assert "final.n_items" not in run.data.metrics and run.data.params["final.n_items"] == "150"   # a size, not a metric
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert len(history) == 8  # one point per epoch
    assert run.data.params["tokenizer.method"] == "rqvae"
    # the UI opens the experiment on its runs (model training), not on the empty GenAI traces view
    assert mlflow.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


@pytest.mark.slow
def test_malformed_input_fails_with_file_row_column(cli, tmp_path):
    data = tmp_path / "ml"
    data.mkdir()
    (data / "u.data").write_text("".join(f"{u}\t{i}\t4\t{880000000 + n}\n" for n, (u, i) in
                                         enumerate([(1, 1), (1, 2), (1, 1), (2, 1), (2, 2), (2, 42)])))
    (data / "u.item").write_text("".join(f"{i}|Movie {i}|01-Jan-1995||u|{'|'.join(['0'] * 19)}\n" for i in (1, 2)))
    summary_path = tmp_path / "s.json"
    cfg = _config(tmp_path, dataset={"format": "movielens_grouplens", "path": str(data)})
    result = CliRunner().invoke(cli, ["train", "--config", str(cfg), "--summary", str(summary_path)])
    assert result.exit_code != 0
    s = json.loads(summary_path.read_text())
    assert s["status"] == "failed"
    assert "u.data, row 6, column 'item_id'" in s["error"]
    assert s["validation"]["passed"] is False and s["validation"]["rejected_rows"] == 1


@pytest.mark.slow
def test_zenml_cli_runs_the_same_pipeline(tmp_path):
    """`zenml pipeline run pipelines.training.training_pipeline -c FILE` works (same store as the tests)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    zenml = Path(sys.executable).parent / "zenml"
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([str(zenml), "pipeline", "run", "pipelines.training.training_pipeline",
                           "-c", str(_config(tmp_path))], cwd=root, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from zenml.client import Client

    run = Client().list_pipeline_runs(sort_by="desc:created", size=1, pipeline_name="training_pipeline").items[0]
    assert run.status.value == "completed"
    summary = run.steps["publish_tokenizer"].outputs["training_summary"][0].load()
    assert summary["sid_quality"]["collision_rate_final"] == 0


@pytest.mark.slow
def test_changing_stage2_settings_reuses_stage1_and_tracks_each_run(cli, tmp_path):
    """Stage 1 comes from the cache; each pipeline run's stage 2 gets its own MLflow run (child of stage 1's),
    so new stage-2 settings never collide with the params logged by an earlier run."""
    import mlflow
    from zenml.client import Client

    tokenizer = {**TINY["parameters"]["tokenizer"], "method": "mmq", "epochs": 4, "eval_every": 2}
    ids = []
    for lr in (1e-3, 3e-3):
        stage2 = {"enabled": True, "epochs": 1, "batch_size": 256, "lr": lr}
        path = tmp_path / f"s{lr}.json"
        cfg = _config(tmp_path, tokenizer=tokenizer, stage2=stage2,  # a 4-epoch toy: codes not healthy
                      health={"min_utilization": 0.0, "min_normalized_entropy": 0.0})
        result = CliRunner().invoke(cli, ["train", "--config", str(cfg), "--summary", str(path)])
        assert result.exit_code == 0, result.output
        ids.append(json.loads(path.read_text())["mlflow_run_id"])
    run = Client().list_pipeline_runs(sort_by="desc:created", size=1, pipeline_name="training_pipeline").items[0]
    assert run.steps["train_tokenizer"].status.value == "cached"
    first, second = (mlflow.get_run(i) for i in ids)
    assert first.info.run_id != second.info.run_id
    assert first.data.params["stage2.lr"] == "0.001" and second.data.params["stage2.lr"] == "0.003"
    assert first.data.tags["mlflow.parentRunId"] == second.data.tags["mlflow.parentRunId"]  # the one stage-1 run
    assert "final.collision_rate_final" in second.data.metrics
