"""Drift monitoring steps: the Evidently drift report (also written to the reports folder), the
drift gate, and the analysts' approval."""

import logging
import os
from typing import Annotated, Tuple

from zenml import get_step_context, log_metadata, step

from sidkit.config import ApprovalConfig
from sidkit.data.snapshots import last_month
from sidkit.data.splits import Splits
from sidkit.features import ItemEmbeddings
from sidkit.monitoring.drift import (
    DriftResult,
    DriftThresholds,
    compare_snapshots,
    compare_tokenizers,
    same_data,
    state_of,
)
from sidkit.monitoring.reports import publish_report
from sidkit.sids.table import SIDTable
from steps.artifacts import Artifacts
from steps.context import model_name_and_version
from steps.report_store import store_report

APPROVAL_ENV = "SIDKIT_DRIFT_APPROVAL"
log = logging.getLogger("sidkit")


@step(enable_cache=False)
def detect_sid_drift(
    reference_table: SIDTable,
    reference_embeddings: ItemEmbeddings,
    reference_splits: Splits,
    current_table: SIDTable,
    current_embeddings: ItemEmbeddings,
    current_splits: Splits,
    mode: str,
    thresholds: dict,
    name: str,
    reports_dir: str | None = None,
    reference_label: str | None = None,
    current_label: str | None = None,
    model_name: str | None = None,
) -> Tuple[Annotated[DriftResult, Artifacts.DRIFT_REPORT], Annotated[dict, Artifacts.DRIFT_SUMMARY]]:
    """Compare reference and current SIDs (mode ``tokenizers``: same catalogue, two tokenizer
    versions; ``snapshots``: two catalogue snapshots; ``auto``: tokenizers when both versions saw
    the same data -- same items, embeddings and interactions -- else snapshots). The report is an
    artifact and a page in the reports folder. The labels name the versions on the page (default:
    the model version this run produces, for the current side)."""
    t = DriftThresholds.model_validate(thresholds)
    ctx = get_step_context()
    model, version = model_name_and_version()
    if current_label is None and version is not None:
        current_label = f"{model} v{version} (this run)"
    ref = state_of(reference_table, reference_embeddings, interactions=reference_splits.interactions,
                   label=reference_label or reference_table.info.get("model_version") or "reference")
    cur = state_of(current_table, current_embeddings, interactions=current_splits.interactions,
                   label=current_label or current_table.info.get("model_version") or "current")
    if mode == "auto":
        mode = "tokenizers" if same_data(ref, cur) else "snapshots"
    if mode == "tokenizers":
        result = compare_tokenizers(ref, cur, t)
    elif mode == "snapshots":
        result = compare_snapshots(ref, cur, t)
    else:
        raise ValueError(f"drift mode must be tokenizers, snapshots or auto, got {mode!r}")
    result.summary = {**result.summary, "run_name": ctx.pipeline_run.name, "model": model_name or model,
                      # the months the two snapshots reach: the overview's month-by-month trend reads them
                      "snapshot_months": {"reference": last_month(reference_splits.interactions),
                                          "current": last_month(current_splits.interactions)}}
    page = publish_report(result, f"{name}-{ctx.pipeline_run.name}", reports_dir)
    summary = {**result.summary, "report_html": str(page), "report_uri": store_report(page.parent, "drift"),
               "run_name": ctx.pipeline_run.name}
    result.summary = summary
    return result, summary


@step(enable_cache=False)
def drift_gate(drift_summary: dict, approval: ApprovalConfig, model_name: str | None = None,
               model_version: str | None = None) -> Annotated[bool, Artifacts.DRIFT_APPROVED]:
    """True when promotion may go on: no drift, or drift that an analyst approved.

    Who answers, in order: the active stack's alerter (``alerter.ask``, e.g. Slack), if there is
    one and ``approval.use_alerter`` is on; else the environment variable SIDKIT_DRIFT_APPROVAL
    (``approve`` / ``reject``), for schedulers and CI where nobody is there to answer; else
    ``approval.default`` (``reject`` unless configured). ``approval.fail_on_reject`` makes a
    rejection fail the run instead of returning False.
    """
    if not drift_summary.get("drift_detected"):
        decision = {"approved": True, "by": "no drift"}
    else:
        question = (f"SID drift detected ({'; '.join(drift_summary.get('reasons', []))}). Report: "
                    f"{drift_summary.get('report_html')}. Approve promotion?")
        answer, by = None, None
        if approval.use_alerter:
            try:
                from zenml.client import Client

                alerter = Client().active_stack.alerter
                if alerter is not None:
                    answer, by = bool(alerter.ask(question)), f"alerter {alerter.name}"
            except Exception as exc:  # an unreachable alerter must not block the fallback
                log.warning("alerter could not be asked (%s); falling back to %s", exc, APPROVAL_ENV)
        if answer is None and os.environ.get(APPROVAL_ENV):
            value = os.environ[APPROVAL_ENV].strip().lower()
            if value not in ("approve", "reject"):
                raise ValueError(f"{APPROVAL_ENV} must be 'approve' or 'reject', got {value!r}")
            answer, by = value == "approve", f"environment {APPROVAL_ENV}={value}"
        if answer is None:
            answer, by = approval.default == "approve", f"default ({approval.default}): nobody answered"
        decision = {"approved": answer, "by": by, "question": question}
        log.warning("drift gate: %s by %s", "approved" if answer else "rejected", by)
    # recorded on the version under review, so a later `compare` can refuse to promote it
    try:
        if model_name and model_version:
            log_metadata(metadata={"drift_gate": decision}, model_name=model_name, model_version=model_version)
        else:
            log_metadata(metadata={"drift_gate": decision}, infer_model=True)
    except Exception:  # no model in this run
        pass
    if not decision["approved"] and approval.fail_on_reject:
        raise RuntimeError(f"drift gate: promotion stopped ({decision['by']}); {decision.get('question', '')}")
    return bool(decision["approved"])
