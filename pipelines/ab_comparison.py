"""ab_comparison: the champion (stage ``production``) against a challenger on the same users.

The challenger's catalogue and splits are the ground: the champion serves its published SIDs
there (new items get SIDs from its tokenizer), both sides train the same downstream models on
the same training split, and the paired bootstrap compares them per user. The challenger is
promoted (``set_stage``) only when the decision rule passes; the reason is model metadata.
"""

from zenml import pipeline

from pipelines.model_versions import artifact, resolve_model_version, serving_tokenizer
from sidkit.config import check_pipeline_parameters
from steps.artifacts import Artifacts
from steps.promotion import champion_sid_table, compare_with_champion, promote_challenger


@pipeline(enable_cache=False)
def ab_comparison(
    model: str,
    challenger_version: str,
    champion_version: str | None = None,
    retrieval: dict | None = None,
    ranking: dict | None = None,
    rule: dict | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> None:
    check_pipeline_parameters("ab_comparison", locals())   # before any step: ZenML runs this body to build the DAG
    chall = resolve_model_version(model, challenger_version)
    champion_table = None
    if champion_version is not None:
        champ = resolve_model_version(model, champion_version)
        champion_table = champion_sid_table(serving_tokenizer(champ), artifact(champ, Artifacts.SID_TABLE),
                                            artifact(chall, Artifacts.ITEM_EMBEDDINGS))
    comparison = compare_with_champion(artifact(chall, Artifacts.SID_TABLE), artifact(chall, Artifacts.SPLITS),
                                       champion_table, champion_version, challenger_version, retrieval, ranking,
                                       rule or {}, model_name=model)
    promote_challenger(comparison, model, challenger_version, force=force, dry_run=dry_run)
