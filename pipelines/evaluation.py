"""The evaluation pipeline: a registered tokenizer model version -> generator + ranker -> metrics.

The SID table and splits come from the model version (ZenML Model Control Plane), never
from file paths: ``tokenizer_model`` names the model, ``tokenizer_version`` a version
(number, name or stage such as ``production``; default: the latest).
"""

from zenml import pipeline

from pipelines.caching import LIBRARY_AWARE_CACHE
from pipelines.model_versions import artifact, resolve_model_version
from sidkit.config import TrackingConfig, check_pipeline_parameters
from steps.artifacts import Artifacts
from steps.evaluation import evaluate_discriminative_ranking, evaluate_generative_retrieval, publish_evaluation


@pipeline(enable_cache=True, cache_policy=LIBRARY_AWARE_CACHE)
def evaluation_pipeline(
    tokenizer_model: str,
    tokenizer_version: str | None = None,
    retrieval: dict | None = None,
    ranking: dict | None = None,
    tracking: dict | None = None,
) -> None:
    check_pipeline_parameters("evaluation_pipeline", locals())   # before any step: ZenML runs this body to build the DAG
    mv = resolve_model_version(tokenizer_model, tokenizer_version)
    sid_table = artifact(mv, Artifacts.SID_TABLE)
    splits = artifact(mv, Artifacts.SPLITS)
    r_metrics, _ = evaluate_generative_retrieval(sid_table, splits, retrieval or {})
    k_metrics, _ = evaluate_discriminative_ranking(sid_table, splits, ranking or {})
    publish_evaluation(r_metrics, k_metrics, tokenizer_model, tokenizer_version, TrackingConfig.model_validate(tracking or {}),
                       retrieval or {}, ranking or {})
