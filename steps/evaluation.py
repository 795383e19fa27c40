"""Downstream evaluation steps: generative retrieval, ranking, publishing the metrics."""

from typing import Annotated, Tuple

import numpy as np

from zenml import get_step_context, log_metadata, step

from sidkit.config import TrackingConfig
from sidkit.data.splits import Splits
from sidkit.evaluation.bundles import ModelBundle
from sidkit.evaluation.downstream import eval_config_sha256, evaluate_ranking, evaluate_retrieval, sid_weights
from sidkit.ranking.din import RankerConfig
from sidkit.retrieval.generator import GeneratorConfig, max_tokens
from sidkit.sids.table import SIDTable
from sidkit.tracking import descriptive_of, flatten, metrics_of
from sidkit.utils import log
from steps.artifacts import Artifacts
from steps.context import tracked_run


PER_USER = ("test_ranks", "test_deep_ranks", "test_view_ranks", "test_aucs", "test_auc_weights")   # per test user: in the summary only


@step
def evaluate_generative_retrieval(sid_table: SIDTable, splits: Splits, retrieval: dict) -> Tuple[
    Annotated[dict, Artifacts.RETRIEVAL_METRICS],
    Annotated[ModelBundle, Artifacts.GENERATOR],
]:
    """Train the SID generator on the training split; Recall/NDCG@K on the test items (full catalogue)."""
    cfg = GeneratorConfig.model_validate(retrieval)
    per_user: list = []
    metrics, model, vocab, history = evaluate_retrieval(
        sid_table, splits, cfg, per_user=per_user, on_epoch=lambda e, rec: log.info(
            "SID generator epoch %d: %s", e, {k: round(v, 4) if isinstance(v, float) else v for k, v in rec.items()}))
    metrics["test_ranks"] = per_user[0].ranks.tolist()   # per test user (0 = missed): paired comparisons of rows
    if per_user[0].deep_ranks is not None:
        metrics["test_deep_ranks"] = per_user[0].deep_ranks.tolist()
    if per_user[0].view_ranks is not None:   # multi-view SIDs: each view's beams alone (the "no ensemble" ablation)
        metrics["test_view_ranks"] = {v: r.tolist() for v, r in per_user[0].view_ranks.items()}
    arrays = ({"sids": sid_table.sids(), "weights": sid_weights(sid_table)} if cfg.sid_weights == "router" else {})
    bundle = ModelBundle.of("sid-generator", model, cfg.model_dump(mode="json"), arrays=arrays,
                            info={"vocab_size": vocab.size, "max_len": max_tokens(cfg, vocab.length),
                                  "sid_sizes": vocab.sizes, "epochs": len(history),
                                  "views": metrics.get("views")})
    return metrics, bundle


@step
def evaluate_discriminative_ranking(sid_table: SIDTable, splits: Splits, ranking: dict) -> Tuple[
    Annotated[dict, Artifacts.RANKING_METRICS],
    Annotated[ModelBundle, Artifacts.RANKER],
]:
    """Train the DIN ranker on the training split; AUC/GAUC on held-out items with sampled negatives."""
    cfg = RankerConfig.model_validate(ranking)
    per_user: list = []
    metrics, model = evaluate_ranking(sid_table, splits, cfg, per_user=per_user)
    # per test user (None: one class, no AUC) and its impressions (the GAUC weight): paired comparisons of rows
    metrics["test_aucs"] = [None if np.isnan(a) else float(a) for a in per_user[0].auc]
    metrics["test_auc_weights"] = per_user[0].weight.astype(int).tolist()
    arrays = {"sids": sid_table.sids()}
    if model.rep.use_sid:
        arrays["weights"] = model.rep.sid_weight[1:].numpy()
    bundle = ModelBundle.of("din-ranker", model, cfg.model_dump(mode="json"), arrays=arrays,
                            info={"n_items": sid_table.frame.height})
    return metrics, bundle


@step(enable_cache=False)
def publish_evaluation(retrieval_metrics: dict, ranking_metrics: dict, tokenizer_model: str,
                       tokenizer_version: str | None, tracking: TrackingConfig, retrieval: dict,
                       ranking: dict) -> Annotated[dict, Artifacts.EVALUATION_SUMMARY]:
    """Store the metrics as metadata of the evaluated tokenizer's model version, and in MLflow.
    The summary names the protocol (``eval_config_sha256``) and keeps the per-user results (``PER_USER``);
    metadata and MLflow get the aggregate metrics only."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    ctx = get_step_context()
    tokenizer_version = str(Client().get_model_version(tokenizer_model, tokenizer_version or ModelStages.LATEST).name)
    config_sha = eval_config_sha256(retrieval, ranking)
    summary = {"status": "succeeded", "run_id": str(ctx.pipeline_run.id), "run_name": ctx.pipeline_run.name,
               "tokenizer_model": tokenizer_model, "model_version": tokenizer_version,
               "eval_config_sha256": config_sha, "retrieval": retrieval_metrics, "ranking": ranking_metrics}
    retrieval_metrics = {k: v for k, v in retrieval_metrics.items() if k not in PER_USER}
    ranking_metrics = {k: v for k, v in ranking_metrics.items() if k not in PER_USER}
    log_metadata(metadata={"evaluation": {"retrieval": retrieval_metrics, "ranking": ranking_metrics,
                                          "eval_config_sha256": config_sha,
                                          "run": ctx.pipeline_run.name}},
                 model_name=tokenizer_model, model_version=tokenizer_version)
    if tracking.enabled:
        with tracked_run(tracking.experiment_for("evaluation"), ctx.pipeline_run.name,
                        tags={"tokenizer_model": tokenizer_model, "tokenizer_version": tokenizer_version}) as mlflow:
            mlflow.log_params(flatten({"tokenizer_model": tokenizer_model, "tokenizer_version": tokenizer_version,
                                       "eval_config_sha256": config_sha}))
            mlflow.log_params({**descriptive_of(retrieval_metrics, "retrieval."), **descriptive_of(ranking_metrics, "ranking.")})
            mlflow.log_metrics(metrics_of(retrieval_metrics, "retrieval."))
            mlflow.log_metrics(metrics_of({k: v for k, v in ranking_metrics.items() if k != "features"}, "ranking."))
            summary["mlflow_run_id"] = mlflow.active_run().info.run_id
    return summary
