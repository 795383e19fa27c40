"""MLflow tracking (sqlite store under the project; MLflow 3.17 refuses ``file:`` stores).

The tracking URI comes from ``MLFLOW_TRACKING_URI`` when set, else
``sqlite:///<state_dir>/mlflow/mlflow.db`` with artifacts in ``<state_dir>/mlflow/artifacts``.
Telemetry is off (``MLFLOW_DISABLE_TELEMETRY``, ``DO_NOT_TRACK``).
"""

from __future__ import annotations

import math
import os
import re
from contextlib import contextmanager
from typing import Any, Iterator

from sidkit.settings import state_dir


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    root = state_dir() / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def _mlflow():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = ",".join(map(str, v))
        else:
            out[key] = v
    return out


# MLflow 3's UI opens an experiment without this tag on its GenAI (traces) view, empty for model training
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"


def ensure_experiment(name: str) -> str:
    """The experiment's id, created (as a model-training experiment) if needed; an existing experiment
    without a kind gets it, so the UI opens on its runs and charts."""
    mlflow = _mlflow()
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        if KIND_TAG not in (exp.tags or {}):
            mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, KIND_TAG, KIND)
        return exp.experiment_id
    # a local store keeps its artifacts in the state folder; a tracking server (the stack's tracker, a remote
    # URI) decides where its artifacts go -- never a path on this machine or pod
    local = tracking_uri().startswith(("sqlite:", "file:"))
    artifacts = (state_dir() / "mlflow" / "artifacts").resolve().as_uri() if local else None
    return mlflow.create_experiment(name, artifact_location=artifacts, tags={KIND_TAG: KIND})


@contextmanager
def mlflow_run(experiment: str, run_name: str, run_id: str | None = None, tags: dict | None = None) -> Iterator[Any]:
    """Start (or resume, with ``run_id``) an MLflow run; yields the mlflow module."""
    mlflow = _mlflow()
    exp_id = ensure_experiment(experiment)
    with mlflow.start_run(run_id=run_id, experiment_id=None if run_id else exp_id,
                          run_name=None if run_id else run_name, tags=tags):
        yield mlflow


# sizes and counters that describe a run rather than measure it: params (descriptive_of), never metric charts
DESCRIPTIVE = frozenset({"n_items", "n_users", "levels", "codebook_sizes", "sid_length_final", "epoch", "threads",
                         "soft_entropy_max"})


def metric_name(key: str) -> str:
    """A name MLflow accepts (alphanumerics, ``_ - . : /`` and spaces): ``recall@10`` -> ``recall_at_10``,
    an expert named ``shared0(text+image)`` -> ``shared0_text_image_``."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", key.replace("@", "_at_"))


def metrics_of(record: dict, prefix: str = "") -> dict[str, float]:
    """Numeric entries of a (possibly nested) record, lists expanded per index (``utilization.0``);
    the DESCRIPTIVE keys are left to :func:`descriptive_of`.

    MLflow metric names allow no ``@``: ``recall@10`` is logged as ``recall_at_10``.
    """
    out = {}
    for k, v in record.items():
        key = metric_name(f"{prefix}{k}")
        if isinstance(v, bool) or k in DESCRIPTIVE:
            continue
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[key] = float(v)
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
                    out[f"{key}.{i}"] = float(x)
        elif isinstance(v, dict):
            out.update(metrics_of(v, key + "."))
    return out


def descriptive_of(record: dict, prefix: str = "") -> dict[str, str]:
    """The DESCRIPTIVE entries of a record (top level), as MLflow params."""
    return {f"{prefix}{k}": str(v) for k, v in record.items() if k in DESCRIPTIVE and k != "epoch"}


def close_stale_runs(reason: str) -> list[str]:
    """Mark every MLflow run still RUNNING as FAILED (call only when no sidkit process is alive)."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    closed = []
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'"):
            client.set_tag(run.info.run_id, "sidkit.closed_as_stale", reason)
            client.set_terminated(run.info.run_id, status="FAILED")
            closed.append(run.info.run_id)
    return closed


def log_report_pages(pages: list[str], run_name: str, run_id: str | None, experiment: str,
                     metrics: dict | None = None) -> str | None:
    """Log a pipeline run's report pages (each page's folder: index.html + summary.json) to MLflow under
    ``reports/<kind>/<page folder>``, so the page an analyst reads in the reports folder is the one kept
    beside the run's metrics. Into the run ``run_id`` (training, evaluation), else into a new run of
    ``experiment`` named after the pipeline run, with ``metrics`` (numeric entries of the command's
    summary: churn, lift, p-value...). Returns the MLflow run id, or None when there is nothing to log."""
    from pathlib import Path

    if not pages:
        return None
    with mlflow_run(experiment, run_name, run_id=run_id, tags=None if run_id else {"zenml_run": run_name}) as mlflow:
        for page in map(Path, pages):
            mlflow.log_artifacts(str(page.parent), artifact_path=f"reports/{page.parent.parent.name}/{page.parent.name}")
        if metrics and not run_id:
            mlflow.log_metrics(metrics_of(metrics))
        return mlflow.active_run().info.run_id
