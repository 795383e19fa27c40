"""The evaluation pipeline end to end: a registered tokenizer version in, metrics on the version out."""

import json

import pytest
import yaml
from click.testing import CliRunner

from tests.test_pipeline import _config


@pytest.mark.slow
def test_evaluate_a_registered_tokenizer(tmp_path):
    import run

    train_summary = tmp_path / "train.json"
    result = CliRunner().invoke(run.cli, ["train", "--config", str(_config(tmp_path)), "--summary", str(train_summary)])
    assert result.exit_code == 0, result.output
    version = json.loads(train_summary.read_text())["model_version"]

    cfg = {"parameters": {
        "tokenizer_model": "sidkit-tokenizer-test",
        "retrieval": {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "epochs": 2, "batch_size": 64,
                      "beam_size": 5, "deep_beam_size": 20, "patience": 5},
        "ranking": {"features": "id+sid", "epochs": 1, "dim": 8, "n_eval_negatives": 10},
        "tracking": {"experiment": "sidkit-test-eval"}}}
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(run.cli, ["evaluate", "--config", str(path), "--model-version", version,
                                          "--summary", str(out)])
    assert result.exit_code == 0, result.output
    s = json.loads(out.read_text())
    assert s["status"] == "succeeded" and s["model_version"] == version
    assert {"recall@1", "recall@5", "recall@10", "ndcg@5", "ndcg@10", "n_users"} <= set(s["retrieval"])
    assert s["retrieval"]["n_users"] == 120
    # the protocol and the per-user results a table needs: hash of the resolved configs, intervals, ranks
    from sidkit.evaluation.downstream import eval_config_sha256

    assert s["eval_config_sha256"] == eval_config_sha256(cfg["parameters"]["retrieval"], cfg["parameters"]["ranking"])
    assert len(s["retrieval"]["inputs_sha256"]) == 64          # which SIDs and splits, exactly
    low, high = s["retrieval"]["recall@10_ci"]
    assert low <= s["retrieval"]["recall@10"] <= high
    ranks = s["retrieval"]["test_ranks"]
    assert len(ranks) == 120 and sum(0 < r <= 10 for r in ranks) / 120 == pytest.approx(s["retrieval"]["recall@10"])
    # the deep beam (20 wide) reports R@20 from its own ranks; R@10 stays from the protocol's beam of 5
    deep = s["retrieval"]["test_deep_ranks"]
    assert s["retrieval"]["deep_beam_size"] == 20 and len(deep) == 120 and max(deep) <= 20
    assert sum(0 < r <= 20 for r in deep) / 120 == pytest.approx(s["retrieval"]["recall@20"])
    assert "recall@20_ci" in s["retrieval"] and "recall@50" not in s["retrieval"]
    assert max(ranks) <= 5                                     # the protocol's list is its beam's
    assert {"auc", "gauc", "by_popularity"} <= set(s["ranking"])
    assert {"head", "torso", "tail"} <= set(s["ranking"]["by_popularity"])
    assert 0.0 <= s["ranking"]["auc"] <= 1.0
    # per-user AUCs and impression counts: their weighted mean is the GAUC (paired ranking comparisons of rows)
    aucs, weights = s["ranking"]["test_aucs"], s["ranking"]["test_auc_weights"]
    assert len(aucs) == len(weights) == 120
    kept = [(a, w) for a, w in zip(aucs, weights) if a is not None]
    assert sum(a * w for a, w in kept) / sum(w for _, w in kept) == pytest.approx(s["ranking"]["gauc"])

    from zenml.client import Client

    mv = Client().get_model_version("sidkit-tokenizer-test", version)
    assert "retrieval" in mv.run_metadata["evaluation"]
    assert "test_ranks" not in mv.run_metadata["evaluation"]["retrieval"]    # aggregates only in metadata
    assert "test_deep_ranks" not in mv.run_metadata["evaluation"]["retrieval"]
    assert "test_aucs" not in mv.run_metadata["evaluation"]["ranking"]
    gen = Client().get_pipeline_run(s["run_id"]).steps["evaluate_generative_retrieval"].outputs["sid_generator"][0].load()
    model = gen.build()  # the stored generator rebuilds from config.json + safetensors
    assert sum(p.numel() for p in model.parameters()) > 0

    bad = CliRunner().invoke(run.cli, ["evaluate", "--config", str(path), "--model-version", "999",
                                       "--summary", str(out)])
    assert bad.exit_code != 0 and json.loads(out.read_text())["status"] == "failed"
