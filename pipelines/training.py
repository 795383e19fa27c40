"""The training pipeline: data -> validation -> split -> embeddings -> tokenizer (-> stage 2) -> SIDs -> gate -> publish."""


from zenml import pipeline

from steps.data import load_data, split_data, validate_data, validation_gate
from steps.features import embed_items, validate_item_embeddings
from steps.registry import publish_tokenizer
from steps.tokenizer import assign_semantic_ids, finetune_tokenizer, sid_health_gate, train_tokenizer


@pipeline(enable_cache=True)
def training_pipeline(
    dataset: dict,
    validation: dict | None = None,
    max_history: int = 20,
    features: dict | None = None,
    tokenizer: dict | None = None,
    stage2: dict | None = None,
    collisions: dict | None = None,
    health: dict | None = None,
    tracking: dict | None = None,
) -> None:
    """Learn semantic IDs for one catalogue. Every step's output is a versioned artifact."""
    tracking = tracking or {}
    raw = load_data(dataset)
    catalogue, report, _ = validate_data(raw, validation or {})
    passed = validation_gate(report)
    splits = split_data(catalogue, passed, max_history=max_history)
    embeddings = embed_items(catalogue, splits, features or {})
    emb_report, _ = validate_item_embeddings(catalogue, embeddings)
    validation_gate(emb_report, id="embedding_validation_gate")
    stage1, history, mlflow_run_id = train_tokenizer(embeddings, tokenizer or {}, tracking,
                                                     after="embedding_validation_gate")
    tok, stage2_history = finetune_tokenizer(stage1, embeddings, splits, stage2 or {}, mlflow_run_id, tracking)
    sid_table, quality = assign_semantic_ids(tok, embeddings, collisions or {})
    healthy = sid_health_gate(quality, health or {})
    publish_tokenizer(catalogue, splits, embeddings, tok, quality, report, mlflow_run_id, healthy, tracking,
                      history, stage2_history)
