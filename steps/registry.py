"""Publish a trained tokenizer: model-version metadata, final MLflow metrics, the run summary."""


from typing import Annotated

from zenml import get_step_context, log_metadata, step

import sidkit
from sidkit.config import TrackingConfig
from sidkit.data.schema import Catalogue
from sidkit.data.splits import Splits
from sidkit.data.validation import ValidationReport
from sidkit.evaluation.sid_quality import SIDQuality
from sidkit.features import ItemEmbeddings
from sidkit.tokenizers import Tokenizer
from sidkit.tracking import descriptive_of, metrics_of
from steps.artifacts import Artifacts
from steps.context import tracked_run


@step(enable_cache=False)
def publish_tokenizer(
    catalogue: Catalogue,
    splits: Splits,
    embeddings: ItemEmbeddings,
    tokenizer: Tokenizer,
    quality: SIDQuality,
    validation: ValidationReport,
    mlflow_run_id: str,
    sid_health_passed: bool,
    tracking: TrackingConfig,
    training_history: list,
    stage2_history: list,
) -> Annotated[dict, Artifacts.TRAINING_SUMMARY]:
    """Attach data hash, seeds, encoder versions and SID quality to the model version; finish MLflow."""
    ctx = get_step_context()
    model = ctx.model
    summary = {
        "status": "succeeded",
        "run_id": str(ctx.pipeline_run.id),
        "run_name": ctx.pipeline_run.name,
        "dataset": {**{k: v for k, v in catalogue.summary().items() if k != "source"},
                    "content_hash": catalogue.content_hash(), "splits": splits.summary()},
        "tokenizer": {**tokenizer.describe(), "seed": tokenizer.config.seed,
                      "config": tokenizer.config.model_dump(mode="json"),
                      "training_seconds": round(sum(h.get("seconds", 0.0) for h in training_history), 3),
                      "stage2_seconds": round(sum(h.get("seconds", 0.0) for h in stage2_history), 3)},
        "encoders": {v: {k: e for k, e in info.items() if not isinstance(e, list)}
                     for v, info in embeddings.encoders.items()},
        "sid_quality": quality.to_dict(),
        "validation": {"passed": validation.passed, "rejected_rows": validation.rejected_rows,
                       "mode": validation.mode},
        "model": {"name": model.name if model else None, "version": str(model.version) if model else None},
        "model_version": str(model.version) if model else None,
        "mlflow_run_id": mlflow_run_id or None,
        "sidkit_version": sidkit.__version__,
    }
    if model is not None:
        log_metadata(metadata={
            "data": summary["dataset"], "tokenizer": summary["tokenizer"], "encoders": summary["encoders"],
            "sid_quality": summary["sid_quality"], "validation": summary["validation"],
            "seeds": {"tokenizer": tokenizer.config.seed}, "mlflow_run_id": mlflow_run_id,
        }, infer_model=True)
    if mlflow_run_id and tracking.enabled:
        with tracked_run(tracking.experiment_for("training"), "", run_id=mlflow_run_id) as mlflow:
            mlflow.log_metrics(metrics_of(quality.to_dict(), "final."))
            mlflow.log_params(descriptive_of(quality.to_dict(), "final."))
            mlflow.log_dict(summary, "training_summary.json")
            mlflow.set_tags({"zenml_model": summary["model"]["name"] or "", "zenml_model_version": summary["model_version"] or "",
                             "dataset": catalogue.name, "data_hash": summary["dataset"]["content_hash"]})
    return summary
