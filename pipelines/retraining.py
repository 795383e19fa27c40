"""retraining: a new snapshot in -> validated -> challenger SIDs -> drift report -> A/B -> promoted or not.

``mode`` chooses how the challenger's SIDs are made:

* ``append`` (stable SIDs): the champion's tokenizer is kept; every item the champion published
  keeps its SID and new items get free SIDs (sidkit.sids.stable). Churn of existing items is 0.
* ``full``: a new tokenizer is trained on the snapshot; the drift report states the churn.

Without a champion (the first run) there is nothing to append to or compare with: the tokenizer
is trained in full and the challenger is promoted, and the summary says so.
"""

from zenml import pipeline

from pipelines.common import trained_sids, validated_inputs
from pipelines.model_versions import artifact, resolve_model_version, serving_tokenizer
from sidkit.config import CollisionsConfig, TrackingConfig, check_pipeline_parameters, section_model
from sidkit.evaluation.sid_quality import HealthThresholds
from steps.artifacts import Artifacts
from steps.monitoring import detect_sid_drift, drift_gate
from steps.promotion import champion_sid_table, compare_with_champion, promote_challenger
from steps.registry import publish_tokenizer
from steps.tokenizer import extend_semantic_ids, sid_health_gate

MODES = ("append", "full")


@pipeline(enable_cache=False)
def retraining(
    model_name: str,
    dataset: dict,
    champion_version: str | None = None,
    mode: str = "append",
    validation: dict | None = None,
    max_history: int = 20,
    features: dict | None = None,
    tokenizer: dict | None = None,
    stage2: dict | None = None,
    collisions: dict | None = None,
    health: dict | None = None,
    drift: dict | None = None,
    ab: dict | None = None,
    tracking: dict | None = None,
) -> None:
    check_pipeline_parameters("retraining", locals())   # before any step: ZenML runs this body to build the DAG
    if mode not in MODES:
        raise ValueError(f"retraining mode must be one of {MODES}, got {mode!r}")
    # the typed sections (their defaults are the models', never a `.get` default here)
    tracking = TrackingConfig.model_validate(tracking or {})
    drift, ab = section_model("drift").model_validate(drift or {}), section_model("ab").model_validate(ab or {})
    catalogue, report, splits, embeddings = validated_inputs(dataset, validation, max_history, features)

    champ = resolve_model_version(model_name, champion_version) if champion_version else None
    if mode == "append" and champ is not None:
        tok, sid_table, quality, _ = extend_semantic_ids(serving_tokenizer(champ), artifact(champ, Artifacts.SID_TABLE),
                                                         embeddings, after="embedding_validation_gate")
        mlflow_run_id, history, stage2_history = "", [], []
    else:
        tok, sid_table, quality, mlflow_run_id, history, stage2_history = trained_sids(
            embeddings, splits, tokenizer, stage2, CollisionsConfig.model_validate(collisions or {}), tracking)
    healthy = sid_health_gate(quality, HealthThresholds.model_validate(health or {}))
    publish_tokenizer(catalogue, splits, embeddings, tok, quality, report, mlflow_run_id, healthy, tracking,
                      history, stage2_history)

    approved = True
    champion_table = None
    if champ is not None:
        _, drift_summary = detect_sid_drift(
            artifact(champ, Artifacts.SID_TABLE), artifact(champ, Artifacts.ITEM_EMBEDDINGS),
            artifact(champ, Artifacts.SPLITS), sid_table, embeddings, splits,
            mode=drift.mode, thresholds=drift.thresholds.model_dump(),
            name=f"{model_name}-retraining", reports_dir=drift.reports_dir,
            reference_label=f"{model_name} v{champion_version} (champion)", model_name=model_name,
            after="publish_tokenizer")
        approved = drift_gate(drift_summary, drift.approval)
        champion_table = champion_sid_table(serving_tokenizer(champ), artifact(champ, Artifacts.SID_TABLE), embeddings)
    comparison = compare_with_champion(sid_table, splits, champion_table, champion_version, None,
                                       _set_keys(ab.retrieval), _set_keys(ab.ranking), _set_keys(ab.rule),
                                       model_name=model_name, after="publish_tokenizer")
    promote_challenger(comparison, model_name, None, approved)


def _set_keys(section):
    """A section as the keys it sets (what a config file would have said); None stays None."""
    return None if section is None else section.model_dump(mode="json", exclude_unset=True)
