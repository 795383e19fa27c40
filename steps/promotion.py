"""Champion vs challenger: the champion's SIDs on the challenger's catalogue, the paired A/B
comparison, and promotion (``set_stage("production")``) when the decision rule passes."""

from typing import Annotated, Optional

from zenml import get_step_context, log_metadata, step

from sidkit.data.splits import Splits
from sidkit.evaluation.ab import ABComparison, compare, no_champion_decision
from sidkit.evaluation.downstream import evaluate_ranking, evaluate_retrieval
from sidkit.features import ItemEmbeddings
from sidkit.monitoring.reports import publish_page
from sidkit.sids.stable import extend_sid_table
from sidkit.sids.table import SIDTable
from sidkit.tokenizers import Tokenizer
from steps.artifacts import Artifacts
from steps.context import model_name_and_version
from steps.report_store import store_report


@step
def champion_sid_table(champion_tokenizer: Tokenizer, champion_table: SIDTable,
                       embeddings: ItemEmbeddings) -> Annotated[SIDTable, Artifacts.CHAMPION_SID_TABLE]:
    """What the champion would serve on the challenger's catalogue: its published SIDs, and SIDs
    from its tokenizer for items it has never seen (stable-SID extension)."""
    table, _ = extend_sid_table(champion_table, champion_tokenizer, embeddings)
    return table


def _evaluate(table: SIDTable, splits: Splits, retrieval: dict | None, ranking: dict | None):
    per, metrics = {}, {}
    if retrieval:
        out: list = []
        metrics["retrieval"], *_ = evaluate_retrieval(table, splits, retrieval, per_user=out)
        per["retrieval"] = out[0]
    if ranking:
        out = []
        metrics["ranking"], _ = evaluate_ranking(table, splits, ranking, per_user=out)
        per["ranking"] = out[0]
    return per, metrics


@step(enable_cache=False)
def compare_with_champion(challenger_table: SIDTable, splits: Splits, champion_table: Optional[SIDTable],
                          champion: Optional[str], challenger: Optional[str], retrieval: Optional[dict],
                          ranking: Optional[dict], rule: dict,
                          model_name: Optional[str] = None) -> Annotated[ABComparison, Artifacts.AB_COMPARISON]:
    """Both sides trained and evaluated on the same splits (same users, same sampled negatives);
    paired bootstrap per metric and stratum; the decision rule's verdict. ``challenger`` None: the
    model version this run produces."""
    if challenger is None:
        model = get_step_context().model
        challenger = str(model.version) if model is not None else "challenger"
    if not retrieval and not ranking:
        raise ValueError("the A/B comparison needs `retrieval` and/or `ranking` settings")
    chall_per, chall_metrics = _evaluate(challenger_table, splits, retrieval, ranking)
    if champion_table is None:
        return ABComparison({"champion": None, "challenger": challenger, "metrics": {},
                             "challenger_metrics": chall_metrics, "decision": no_champion_decision()})
    champ_per, champ_metrics = _evaluate(champion_table, splits, retrieval, ranking)
    result = compare(champ_per, chall_per, rule)
    result.update({"champion": champion, "challenger": challenger, "champion_metrics": champ_metrics,
                   "challenger_metrics": chall_metrics})
    comparison = ABComparison(result)
    ctx = get_step_context()
    model = model_name or model_name_and_version()[0]
    promote = bool(result["decision"]["promote"])
    page = publish_page("ab", f"{model or 'model'}-v{champion}-vs-v{challenger}", comparison.to_html(),
                        {"model": model, "versions": {"champion": champion, "challenger": challenger},
                         "verdict": "PROMOTE" if promote else "keep champion", "ok": promote,
                         "run_name": ctx.pipeline_run.name})
    store_report(page.parent, "ab")
    return comparison


def gate_verdict(run_metadata: dict) -> dict | None:
    """The drift gate's recorded decision on a model version (``None``: never gated)."""
    gate = (run_metadata or {}).get("drift_gate")
    return gate if isinstance(gate, dict) and "approved" in gate else None


@step(enable_cache=False)
def promote_challenger(comparison: ABComparison, model_name: str, challenger: Optional[str],
                       drift_approved: bool = True, force: bool = False,
                       dry_run: bool = False) -> Annotated[dict, Artifacts.PROMOTION]:
    """Set the challenger's stage to ``production`` when the rule passed and its drift gate (this run's,
    or one recorded on the version by an earlier drift or retraining run) did not reject it.

    ``force`` promotes over a rejected gate and records that it did; ``dry_run`` decides and
    reports without changing any stage or metadata. The record names the version in production after.
    """
    from zenml.client import Client
    from zenml.enums import ModelStages

    decision = dict(comparison.result["decision"])
    ctx = get_step_context()
    version = challenger or (str(ctx.model.version) if ctx.model else None)
    if version is None:
        raise ValueError("no challenger model version to promote")
    client = Client()
    mv = client.get_model_version(model_name, version)
    recorded = gate_verdict(mv.run_metadata)
    rejected_by = ("this run's drift gate" if not drift_approved else
                   f"the drift gate ({recorded.get('by', '?')})" if recorded and not recorded["approved"] else None)
    if decision["promote"] and rejected_by:
        if force:
            decision["reason"] = f"forced over a rejection by {rejected_by}: " + decision["reason"]
        else:
            decision = {**decision, "promote": False,
                        "reason": f"not promoted: drift detected and rejected by {rejected_by}; "
                                  f"--force overrides ({decision['reason']})"}
    if decision["promote"] and not dry_run:
        mv.set_stage(ModelStages.PRODUCTION, force=True)
    try:
        production = str(client.get_model_version(model_name, ModelStages.PRODUCTION).name)
    except KeyError:
        production = None
    record = {"promoted": bool(decision["promote"]) and not dry_run, "would_promote": bool(decision["promote"]),
              "dry_run": dry_run, "forced": bool(force and rejected_by and decision["promote"]),
              "reason": ("dry run, nothing changed: " if dry_run else "") + decision["reason"],
              "champion": comparison.result.get("champion"), "challenger": str(mv.name), "production": production,
              "metrics": comparison.result.get("metrics", {}), "run": ctx.pipeline_run.name}
    if not dry_run:
        log_metadata(metadata={"promotion": record}, model_name=model_name, model_version=str(mv.name))
    return record
