"""Champion vs challenger: the champion's SIDs on the challenger's catalogue, the paired A/B
comparison, and promotion (``set_stage("production")``) when the decision rule passes."""

from typing import Annotated, Optional

from zenml import get_step_context, log_metadata, step

from sidkit.data.splits import Splits
from sidkit.evaluation.ab import ABComparison, compare, no_champion_decision
from sidkit.evaluation.downstream import evaluate_ranking, evaluate_retrieval
from sidkit.features import ItemEmbeddings
from sidkit.sids.stable import extend_sid_table
from sidkit.sids.table import SIDTable
from sidkit.tokenizers import Tokenizer
from steps.artifacts import Artifacts


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
                          ranking: Optional[dict], rule: dict) -> Annotated[ABComparison, Artifacts.AB_COMPARISON]:
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
    return ABComparison(result)


@step(enable_cache=False)
def promote_challenger(comparison: ABComparison, model_name: str, challenger: Optional[str],
                       drift_approved: bool = True) -> Annotated[dict, Artifacts.PROMOTION]:
    """Set the challenger's stage to ``production`` when the rule passed and drift (if checked) was
    approved; the decision and its reason become model-version metadata either way."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    decision = dict(comparison.result["decision"])
    if decision["promote"] and not drift_approved:
        decision = {**decision, "promote": False,
                    "reason": "not promoted: drift detected and not approved (" + decision["reason"] + ")"}
    ctx = get_step_context()
    version = challenger or (str(ctx.model.version) if ctx.model else None)
    if version is None:
        raise ValueError("no challenger model version to promote")
    mv = Client().get_model_version(model_name, version)
    if decision["promote"]:
        mv.set_stage(ModelStages.PRODUCTION, force=True)
    record = {"promoted": bool(decision["promote"]), "reason": decision["reason"],
              "champion": comparison.result.get("champion"), "challenger": str(mv.name),
              "metrics": comparison.result.get("metrics", {}), "run": ctx.pipeline_run.name}
    log_metadata(metadata={"promotion": record}, model_name=model_name, model_version=str(mv.name))
    return record
