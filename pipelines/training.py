"""The training pipeline: data -> validation -> split -> embeddings -> tokenizer (-> stage 2) -> SIDs -> gate -> publish."""


from zenml import pipeline

from pipelines.caching import LIBRARY_AWARE_CACHE
from pipelines.common import trained_sids, validated_inputs
from sidkit.config import CollisionsConfig, TrackingConfig, check_pipeline_parameters
from sidkit.evaluation.sid_quality import HealthThresholds
from steps.registry import publish_tokenizer
from steps.tokenizer import sid_health_gate


@pipeline(enable_cache=True, cache_policy=LIBRARY_AWARE_CACHE)
def training_pipeline(
    dataset: dict,
    validation: dict | None = None,
    max_history: int = 20,
    features: dict | None = None,
    tokenizer: dict | None = None,
    stage2: dict | None = None,
    collisions: dict | None = None,
    health: dict | None = None,
    tracking: dict | None = None,
) -> None:
    """Learn semantic IDs for one catalogue. Every step's output is a versioned artifact."""
    check_pipeline_parameters("training_pipeline", locals())   # before any step: ZenML runs this body to build the DAG
    tracking = TrackingConfig.model_validate(tracking or {})   # the steps take the typed sections
    catalogue, report, splits, embeddings = validated_inputs(dataset, validation, max_history, features)
    tok, sid_table, quality, mlflow_run_id, history, stage2_history = trained_sids(
        embeddings, splits, tokenizer, stage2, CollisionsConfig.model_validate(collisions or {}), tracking)
    healthy = sid_health_gate(quality, HealthThresholds.model_validate(health or {}))
    publish_tokenizer(catalogue, splits, embeddings, tok, quality, report, mlflow_run_id, healthy, tracking,
                      history, stage2_history)
