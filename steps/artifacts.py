"""Every artifact name in one place: used in ``Annotated[T, Artifacts.X]`` and to fetch
artifacts from a model version (``model.get_artifact(Artifacts.SID_TABLE)``)."""

from enum import StrEnum


class Artifacts(StrEnum):
    RAW_CATALOGUE = "raw_catalogue"
    CATALOGUE = "catalogue"
    VALIDATION_REPORT = "validation_report"
    QUARANTINE = "quarantine"
    SPLITS = "splits"
    ITEM_EMBEDDINGS = "item_embeddings"
    EMBEDDING_VALIDATION_REPORT = "embedding_validation_report"
    EMBEDDING_QUARANTINE = "embedding_quarantine"
    TOKENIZER = "tokenizer"
    TRAINING_HISTORY = "tokenizer_training_history"
    MLFLOW_RUN_ID = "mlflow_run_id"
    FINETUNED_TOKENIZER = "finetuned_tokenizer"   # the tokenizer a version serves SIDs with (see steps.tokenizer)
    FINETUNE_HISTORY = "finetune_history"
    FINETUNE_MLFLOW_RUN_ID = "finetune_mlflow_run_id"   # the run holding stage 2 (child of the stage-1 run)
    SID_TABLE = "sid_table"
    SID_QUALITY = "sid_quality"
    TRAINING_SUMMARY = "training_summary"
    RETRIEVAL_METRICS = "retrieval_metrics"
    GENERATOR = "sid_generator"
    RANKING_METRICS = "ranking_metrics"
    RANKER = "din_ranker"
    EVALUATION_SUMMARY = "evaluation_summary"
    DRIFT_REPORT = "sid_drift_report"
    DRIFT_SUMMARY = "sid_drift_summary"
    DRIFT_APPROVED = "drift_approved"
    CHAMPION_SID_TABLE = "champion_sid_table"
    AB_COMPARISON = "ab_comparison"
    PROMOTION = "promotion"
    SID_STABILITY = "sid_stability"
