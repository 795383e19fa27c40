"""Pipeline fragments shared by the training and retraining pipelines (called inside a pipeline body)."""

from sidkit.config import CollisionsConfig, TrackingConfig
from sidkit.data.loaders import source_fingerprint
from sidkit.features.precomputed import precomputed_fingerprint
from steps.data import load_data, split_data, validate_data, validation_gate
from steps.features import embed_items, validate_item_embeddings
from steps.tokenizer import assign_semantic_ids, finetune_tokenizer, train_tokenizer


def validated_inputs(dataset: dict, validation: dict | None, max_history: int, features: dict | None):
    """data -> validation -> gate -> leave-one-out splits -> embeddings -> embedding validation -> gate.

    Returns the artifacts (catalogue, validation report, splits, embeddings); downstream steps
    start ``after="embedding_validation_gate"``.
    """
    raw = load_data(dataset, source_fingerprint=source_fingerprint(dataset))
    catalogue, report, _ = validate_data(raw, validation or {})
    passed = validation_gate(report)
    splits = split_data(catalogue, passed, max_history=max_history)
    embeddings = embed_items(catalogue, splits, features or {}, precomputed_fingerprint(features))
    emb_report, _ = validate_item_embeddings(catalogue, embeddings)
    validation_gate(emb_report, publish=False, id="embedding_validation_gate")
    return catalogue, report, splits, embeddings


def trained_sids(embeddings, splits, tokenizer: dict | None, stage2: dict | None, collisions: CollisionsConfig,
                 tracking: TrackingConfig):
    """tokenizer training (MLflow) -> MMQ stage 2 (no-op unless enabled) -> SIDs with collisions resolved.

    Returns (tokenizer, sid_table, quality, mlflow_run_id, history, stage2_history); ``mlflow_run_id`` is
    the run of the last training stage (stage 2's own run when it is enabled).
    """
    stage1, history, stage1_run_id = train_tokenizer(embeddings, tokenizer or {}, tracking,
                                                     after="embedding_validation_gate")
    tok, stage2_history, mlflow_run_id = finetune_tokenizer(stage1, embeddings, splits, stage2 or {}, stage1_run_id,
                                                            tracking)
    sid_table, quality = assign_semantic_ids(tok, embeddings, collisions)
    return tok, sid_table, quality, mlflow_run_id, history, stage2_history
