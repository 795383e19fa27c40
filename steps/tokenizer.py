"""Tokenizer steps: train (tracked in MLflow), assign SIDs, gate on SID health."""


import tempfile
from typing import Annotated, Tuple

from zenml import get_step_context, step

from sidkit.evaluation.sid_quality import HealthThresholds, SIDQuality, check_health
from sidkit.features import ItemEmbeddings
from sidkit.sids.table import SIDTable
from sidkit.tokenizers import Tokenizer, TokenizerConfig
from sidkit.tokenizers.fit import assign_sids, fit_tokenizer
from sidkit.tracking import flatten, metrics_of, mlflow_run
from steps.artifacts import Artifacts


@step
def train_tokenizer(embeddings: ItemEmbeddings, tokenizer: dict, tracking: dict) -> Tuple[
    Annotated[Tokenizer, Artifacts.TOKENIZER],
    Annotated[list, Artifacts.TRAINING_HISTORY],
    Annotated[str, Artifacts.MLFLOW_RUN_ID],
]:
    """Train the configured tokenizer; params, per-epoch losses and codebook health go to MLflow."""
    cfg = TokenizerConfig.model_validate(tokenizer)
    if not tracking.get("enabled", True):
        tok, history = fit_tokenizer(embeddings, cfg)
        return tok, history, ""
    run_name = get_step_context().pipeline_run.name
    with mlflow_run(tracking.get("experiment", "sidkit"), run_name, tags={"zenml_run": run_name}) as mlflow:
        mlflow.log_params(flatten({"tokenizer": cfg.model_dump(mode="json"),
                                   "features": embeddings.summary()["views"]}))
        tok, history = fit_tokenizer(
            embeddings, cfg, on_epoch=lambda e, rec: mlflow.log_metrics(metrics_of(rec), step=e))
        with tempfile.TemporaryDirectory() as tmp:
            tok.save(tmp)
            mlflow.log_artifacts(tmp, artifact_path="tokenizer")
        run_id = mlflow.active_run().info.run_id
    return tok, history, run_id


@step
def assign_semantic_ids(tokenizer: Tokenizer, embeddings: ItemEmbeddings, collisions: dict) -> Tuple[
    Annotated[SIDTable, Artifacts.SID_TABLE],
    Annotated[SIDQuality, Artifacts.SID_QUALITY],
]:
    """Encode every item, resolve collisions by the configured policy, measure SID quality."""
    table, quality = assign_sids(tokenizer, embeddings, collisions.get("policy", "append_token"))
    return table, quality


@step(enable_cache=False)
def sid_health_gate(quality: SIDQuality, thresholds: dict) -> Annotated[bool, "sid_health_passed"]:
    """Fail the run on codebook collapse or unresolved collisions (thresholds from config)."""
    check_health(quality, HealthThresholds(**thresholds))
    return True
