"""drift_monitoring: the SIDs of one model version (current) against another (reference).

Either two tokenizer versions over the same catalogue, or one tokenizer over two catalogue
snapshots (sidkit.monitoring.drift); the Evidently report goes to the dashboard and the reports
folder, and the drift gate decides whether promotion may go on.
"""

from zenml import pipeline

from pipelines.model_versions import artifact, resolve_model_version
from sidkit.config import ApprovalConfig, check_pipeline_parameters
from steps.artifacts import Artifacts
from steps.monitoring import detect_sid_drift, drift_gate


@pipeline(enable_cache=False)
def drift_monitoring(
    model: str,
    reference_version: str,
    current_version: str,
    reference_model: str | None = None,
    mode: str = "auto",
    thresholds: dict | None = None,
    approval: dict | None = None,
    reports_dir: str | None = None,
) -> None:
    check_pipeline_parameters("drift_monitoring", locals())   # before any step: ZenML runs this body to build the DAG
    ref = resolve_model_version(reference_model or model, reference_version)
    cur = resolve_model_version(model, current_version)
    _, summary = detect_sid_drift(
        artifact(ref, Artifacts.SID_TABLE), artifact(ref, Artifacts.ITEM_EMBEDDINGS), artifact(ref, Artifacts.SPLITS),
        artifact(cur, Artifacts.SID_TABLE), artifact(cur, Artifacts.ITEM_EMBEDDINGS), artifact(cur, Artifacts.SPLITS),
        mode=mode, thresholds=thresholds or {}, name=f"{model}-v{reference_version}-vs-v{current_version}",
        reports_dir=reports_dir, reference_label=f"{reference_model or model} v{reference_version}",
        current_label=f"{model} v{current_version}", model_name=model)
    drift_gate(summary, ApprovalConfig.model_validate(approval or {}), model_name=model, model_version=current_version)
