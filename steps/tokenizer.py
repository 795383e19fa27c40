"""Tokenizer steps: train (tracked in MLflow), assign SIDs, gate on SID health."""


import tempfile
from typing import Annotated, Tuple

from zenml import get_step_context, step

from sidkit.config import CollisionsConfig, TrackingConfig
from sidkit.evaluation.sid_quality import HealthThresholds, SIDQuality, check_health, health_violations
from sidkit.data.splits import Splits
from sidkit.features import ItemEmbeddings
from sidkit.sids.table import SIDTable
from sidkit.errors import ConfigError
from sidkit.tokenizers import Tokenizer, TokenizerConfig
from sidkit.tokenizers.base import unread_keys
from sidkit.tokenizers.finetune import SoftIndexingConfig, finetune_soft_indexing
from sidkit.sids.stable import extend_sid_table
from sidkit.monitoring.pages import sid_quality_html
from sidkit.monitoring.reports import publish_page
from sidkit.tokenizers.fit import assign_sids, fit_tokenizer, measure_quality
from sidkit.tracking import flatten, metrics_of
from steps.artifacts import Artifacts
from steps.context import model_name_and_version, tracked_run
from steps.report_store import store_report


@step
def train_tokenizer(embeddings: ItemEmbeddings, tokenizer: dict, tracking: TrackingConfig) -> Tuple[
    Annotated[Tokenizer, Artifacts.TOKENIZER],
    Annotated[list, Artifacts.TRAINING_HISTORY],
    Annotated[str, Artifacts.MLFLOW_RUN_ID],
]:
    """Train the configured tokenizer; params, per-epoch losses and codebook health go to MLflow."""
    cfg = TokenizerConfig.model_validate(tokenizer)
    unread = unread_keys(tokenizer)
    if unread:   # run.py refuses these before anything runs; this covers `zenml pipeline run`
        raise ConfigError(f"tokenizer.{unread[0]}: method {cfg.method!r} does not read this key")
    if not tracking.enabled:
        tok, history = fit_tokenizer(embeddings, cfg)
        return tok, history, ""
    run_name = get_step_context().pipeline_run.name
    with tracked_run(tracking.experiment_for("training"), run_name, tags={"zenml_run": run_name}) as mlflow:
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
def finetune_tokenizer(tokenizer: Tokenizer, embeddings: ItemEmbeddings, splits: Splits, stage2: dict,
                       mlflow_run_id: str, tracking: TrackingConfig) -> Tuple[
    Annotated[Tokenizer, Artifacts.FINETUNED_TOKENIZER],
    Annotated[list, Artifacts.FINETUNE_HISTORY],
    Annotated[str, Artifacts.FINETUNE_MLFLOW_RUN_ID],
]:
    """MMQ stage 2 (soft indexing, next-item objective on the training split); a no-op when disabled.

    A separate, cached step: trying stage-2 settings never retrains stage 1. Stage 2 is therefore
    tracked in its own MLflow run, a child of the stage-1 run (which may belong to an earlier
    pipeline run whose stage-2 settings differed); its id is returned so the rest of the pipeline
    logs there. Disabled: the stage-1 run id is passed through.
    """
    cfg = SoftIndexingConfig.model_validate(stage2)
    if not cfg.enabled:
        return tokenizer, [], mlflow_run_id
    index = {item: i for i, item in enumerate(embeddings.item_ids)}
    sequences = [[index[i] for i in seq if i in index] for seq in splits.train_sequences().values()]
    x = embeddings.matrix(tokenizer.config.input_views)
    if not (mlflow_run_id and tracking.enabled):
        return tokenizer, finetune_soft_indexing(tokenizer, x, sequences, cfg), mlflow_run_id
    run_name = get_step_context().pipeline_run.name
    tags = {"zenml_run": run_name, "mlflow.parentRunId": mlflow_run_id, "stage": "stage2-soft-indexing"}
    with tracked_run(tracking.experiment_for("training"), f"{run_name}-stage2", tags=tags) as mlflow:
        mlflow.log_params(flatten({"stage2": cfg.model_dump(mode="json")}))
        history = finetune_soft_indexing(tokenizer, x, sequences, cfg, on_epoch=lambda e, rec: mlflow.log_metrics(
            metrics_of(rec, "stage2."), step=e))
        run_id = mlflow.active_run().info.run_id
    return tokenizer, history, run_id


@step
def assign_semantic_ids(tokenizer: Tokenizer, embeddings: ItemEmbeddings, collisions: CollisionsConfig) -> Tuple[
    Annotated[SIDTable, Artifacts.SID_TABLE],
    Annotated[SIDQuality, Artifacts.SID_QUALITY],
]:
    """Encode every item, resolve collisions by the configured policy, measure SID quality."""
    table, quality = assign_sids(tokenizer, embeddings, collisions.policy, collisions.per_expert)
    return table, quality


@step(enable_cache=False)
def sid_health_gate(quality: SIDQuality, gate: HealthThresholds) -> Annotated[bool, "sid_health_passed"]:
    """Fail the run on codebook collapse or unresolved collisions (thresholds from config); either way the
    SID-quality page (gauges against these thresholds) goes to the reports folder first."""
    ctx = get_step_context()
    model, version = model_name_and_version()
    problems = health_violations(quality, gate)
    title = f"{model} v{version}" if model and version else ctx.pipeline_run.name
    page = publish_page("sid_quality", title, sid_quality_html(quality.to_dict(), gate.model_dump(), problems, title),
                        {"model": model, "versions": {"version": version},
                         "verdict": "healthy" if not problems else "UNHEALTHY",
                         "ok": not problems, "run_name": ctx.pipeline_run.name})
    store_report(page.parent, "sid_quality")
    check_health(quality, gate)
    return True


@step
def extend_semantic_ids(tokenizer: Tokenizer, published_table: SIDTable, embeddings: ItemEmbeddings) -> Tuple[
    Annotated[Tokenizer, Artifacts.FINETUNED_TOKENIZER],
    Annotated[SIDTable, Artifacts.SID_TABLE],
    Annotated[SIDQuality, Artifacts.SID_QUALITY],
    Annotated[dict, Artifacts.SID_STABILITY],
]:
    """Append mode: keep every published item's SID, give new items free SIDs from the same tokenizer.

    The tokenizer is re-published under the name every model version serves SIDs with
    (``finetuned_tokenizer``: stage 2 when it ran, else stage 1; see pipelines/model_versions.py)."""
    table, stats = extend_sid_table(published_table, tokenizer, embeddings)
    quality = measure_quality(tokenizer, embeddings, table)
    return tokenizer, table, quality, stats
