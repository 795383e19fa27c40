"""torch DDP (gloo, 2 CPU processes) gives the single-process result for the same global batch.

Tolerance: parameters within 1e-4 absolute (float32 sums in a different order across ranks);
SIDs identical. Dropout is 0: dropout masks are drawn per rank, so they cannot match. Precision is fp32:
on a CPU with native bf16, ``auto`` would train in bf16, whose rounding differs with the summation order
by far more than 1e-4 (this test checks DDP, not precision; tests/test_precision.py checks bf16).
"""

import numpy as np
import pytest
import torch

from sidkit import distributed
from sidkit.retrieval.generator import GeneratorConfig, train_generator
from sidkit.tokenizers.base import build_tokenizer

GEN = GeneratorConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, dropout=0.0, epochs=2, batch_size=16,
                      warmup_steps=5, max_history=6, precision="fp32")
TOK = {"method": "rqvae", "levels": 2, "codebook_size": 8, "latent_dim": 8, "hidden_dims": [32], "epochs": 6,
       "batch_size": 64, "eval_every": 3, "seed": 0}


def _data():
    rng = np.random.default_rng(0)
    sids = np.stack([np.arange(40) // 8, np.arange(40) % 8], 1)
    seqs = [rng.integers(0, 40, int(rng.integers(3, 9))).tolist() for _ in range(60)]
    x = rng.normal(size=(200, 16)).astype(np.float32)
    return sids, seqs, x


def _train_generator():
    sids, seqs, _ = _data()
    model, _, _ = train_generator(seqs, sids, GEN)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _train_tokenizer():
    _, _, x = _data()
    tok = build_tokenizer(TOK, x.shape[1])
    torch.manual_seed(0)
    tok.fit(x)
    return {k: v.detach().clone() for k, v in tok.state_dict().items()}, tok.encode(x).codes


@pytest.mark.slow
def test_generator_ddp_matches_one_process():
    single = _train_generator()
    ddp = distributed.spawn(_train_generator, world_size=2)
    assert single.keys() == ddp.keys()
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], atol=1e-4, rtol=0, msg=k)


@pytest.mark.slow
def test_tokenizer_ddp_matches_one_process():
    torch.manual_seed(0)
    single_state, single_codes = _train_tokenizer()
    ddp_state, ddp_codes = distributed.spawn(_train_tokenizer, world_size=2)
    for k in single_state:
        torch.testing.assert_close(ddp_state[k], single_state[k], atol=1e-4, rtol=0, msg=k)
    np.testing.assert_array_equal(ddp_codes, single_codes)


def test_shard_without_a_process_group_is_the_whole_batch():
    idx = torch.arange(10)
    assert torch.equal(distributed.shard(idx), idx) and distributed.world_size() == 1


def test_torchrun_initialisation_uses_gloo_for_cpu_tensors_even_with_a_gpu_in_sight(monkeypatch):
    import torch
    import torch.distributed as dist

    from sidkit import distributed

    chosen = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: chosen.append(backend))
    distributed.init_from_env()
    distributed.init_from_env(device="cuda:0")
    assert chosen == ["gloo", "nccl"]
