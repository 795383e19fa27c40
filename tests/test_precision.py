import numpy as np
import pytest
import torch

from sidkit import precision
from sidkit.retrieval.generator import GeneratorConfig, generate_ranked, train_generator
from sidkit.retrieval.metrics import recall_at_k, target_ranks
from tests.conftest import planted_walks


def test_auto_precision_follows_the_cpu_and_explicit_choices_are_kept(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    assert precision.resolve("auto") == "bf16"
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    assert precision.resolve("auto") == "fp32"
    assert precision.resolve("bf16") == "bf16" and precision.resolve("fp32") == "fp32"
    with pytest.raises(ValueError, match="precision"):
        precision.resolve("fp16")
    with pytest.raises(ValueError):
        GeneratorConfig(precision="fp16")
    assert isinstance(precision.cpu_isa(), str) and precision.cpu_isa()
    with precision.autocast("bf16"):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    with precision.autocast("fp32"):
        assert not torch.is_autocast_enabled("cpu")


def test_bf16_training_keeps_retrieval_quality_within_noise():
    """The same planted-successor task trained in fp32 and in bf16 autocast (emulated where the CPU has
    no bf16: slow, but the numbers are the same): test Recall@10 within sampling noise of each other."""
    sids, users = planted_walks(48, 240, (5, 9))
    train = [u[:-2] for u in users]
    test_hist, test_tgt = [u[:-1] for u in users], [u[-1] for u in users]
    recall = {}
    for p in ("fp32", "bf16"):
        cfg = GeneratorConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, epochs=12, batch_size=32, lr=3e-3,
                              beam_size=10, max_history=8, dropout=0.0, precision=p, warmup_steps=20)
        model, vocab, _ = train_generator(train, sids, cfg)
        recall[p] = recall_at_k(target_ranks(generate_ranked(model, vocab, sids, test_hist, cfg), test_tgt), 10)
    assert recall["fp32"] > 0.5                                   # the task is learnt ...
    noise = 2 * np.sqrt(recall["fp32"] * (1 - recall["fp32"]) / len(users))
    assert abs(recall["bf16"] - recall["fp32"]) <= 2 * noise       # ... and bf16 learns it as well
