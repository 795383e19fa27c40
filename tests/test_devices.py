"""SIDKIT_DEVICE reaches every trainer (sidkit.devices).

No GPU here, so the device the trainers are sent to is torch's ``meta`` device: tensors with a shape and
no data. A model built off the device, or a batch left on the CPU, shows at the model's first forward
call, where a hook checks every parameter, buffer and input and then stops the run (a meta tensor has no
values to train on). The CPU path itself is unchanged: every other test runs it.
"""

import itertools

import numpy as np
import pytest
import torch

import sidkit.devices as devices
from sidkit.errors import ConfigError

META = torch.device("meta")


class Reached(Exception):
    """The first forward call of the checked model, with everything on the device."""


@pytest.fixture
def on_meta(monkeypatch):
    """Trainers run on the meta device; returns check(model_class, owner=None) that arms the hook: at the first
    call of a ``model_class`` module, its parameters, buffers and inputs (and ``owner``'s, for models that call
    their own ``forward`` directly, past the hooks) must all be on the device."""
    monkeypatch.setattr(devices, "compute_device", lambda: META)
    handles = []

    def check(model_class: type, owner: torch.nn.Module | None = None) -> None:
        def hook(module, args):
            if not isinstance(module, model_class):
                return None
            held = itertools.chain(*((m.parameters(), m.buffers()) for m in (module, owner) if m is not None))
            tensors = [t for t in itertools.chain(held, args) if isinstance(t, torch.Tensor)]
            off = [tuple(t.shape) for t in tensors if t.device != META]
            assert not off, f"{type(module).__name__}: tensors off the device at its first call: {off}"
            raise Reached(type(module).__name__)
        handles.append(torch.nn.modules.module.register_module_forward_pre_hook(hook))

    yield check
    for h in handles:
        h.remove()


def test_device_names_are_checked(monkeypatch):
    assert devices.resolve_device("cpu") == torch.device("cpu")
    monkeypatch.delenv(devices.DEVICE_ENV, raising=False)
    assert devices.compute_device() == torch.device("cpu")            # the default
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == torch.device("cpu")        # no GPU: auto falls back
    with pytest.raises(ConfigError, match="no CUDA device"):
        devices.resolve_device("cuda")                                  # never a silent CPU run
    with pytest.raises(ConfigError, match="expected cpu, auto, cuda or cuda:N"):
        devices.resolve_device("gpu")
    monkeypatch.setenv(devices.DEVICE_ENV, "tpu")
    with pytest.raises(ConfigError, match="SIDKIT_DEVICE"):
        devices.compute_device()


def test_the_cli_refuses_a_device_this_machine_lacks(monkeypatch):
    from pipelines.cli_support import check_device

    monkeypatch.setenv(devices.DEVICE_ENV, "cuda:7")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as stop:
        check_device()
    assert stop.value.code == 2                                          # bad config, nothing ran


def test_the_generator_trains_and_ranks_on_the_device(on_meta):
    from sidkit.retrieval.generator import GeneratorConfig, ItemHistoryGenerator, train_generator
    from sidkit.retrieval.decoding import generate_ranked
    from sidkit.retrieval.config import SIDVocabulary
    from sidkit.retrieval.models import build_generator, max_tokens
    from tests.conftest import planted_walks

    sids, users = planted_walks(40, 30, (4, 6))
    cfg = GeneratorConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, epochs=1, batch_size=8, max_history=4)
    on_meta(ItemHistoryGenerator)
    with pytest.raises(Reached):
        train_generator([u[:-1] for u in users], sids, cfg)
    # ranking moves a CPU model to the device and searches there (the trie's tables follow the beams)
    with torch.device("cpu"):
        vocab = SIDVocabulary.from_sids(sids)
        model = build_generator(vocab, max_tokens(cfg, vocab.length), cfg)
    on_meta(torch.nn.Module, owner=model)   # beam search calls model.start / extend (methods, past the hooks)
    with pytest.raises(Reached):
        generate_ranked(model, vocab, sids, [u[:-1] for u in users], cfg)


def test_the_ranker_trains_and_scores_on_the_device(on_meta):
    from sidkit.ranking.din import DIN, ItemRepresentation, RankerConfig, evaluation_impressions, score, train_ranker

    sids = np.stack([np.arange(30) % 5, np.arange(30) // 5], 1)
    seqs = [[int(i) for i in np.random.default_rng(u).integers(0, 30, 6)] for u in range(20)]
    cfg = RankerConfig(features="id+sid", epochs=1, dim=8)
    on_meta(DIN)
    with pytest.raises(Reached):
        train_ranker(seqs, 30, cfg, sids=sids)
    model = DIN(ItemRepresentation(30, sids, None, cfg), cfg)
    users, hist, cand, _ = evaluation_impressions([s[:-1] for s in seqs], [s[-1] for s in seqs], 30, cfg)
    with pytest.raises(Reached):
        score(model, hist, cand, users)


@pytest.mark.parametrize("method", ["rqvae", "mmq"])
def test_tokenizers_train_on_the_device_and_come_back_to_the_cpu(on_meta, method):
    from sidkit.tokenizers.base import build_tokenizer

    rng = np.random.default_rng(0)
    views = {"text": 12, "image": 8} if method == "mmq" else None
    x = rng.normal(size=(64, 20 if views else 12)).astype(np.float32)
    cfg = {"method": method, "levels": 2, "codebook_size": 4, "latent_dim": 4, "hidden_dims": [8], "epochs": 1,
           "batch_size": 32, "kmeans_init": False, **({"input_views": list(views)} if views else {})}
    tok = build_tokenizer(cfg, x.shape[1], views)
    on_meta(torch.nn.Module, owner=tok)     # the first module called inside the step (MMQ calls its own forward)
    with pytest.raises(Reached):
        tok.fit(x)
    assert tok.device == META                                    # trained there (it returns to the CPU after)


def test_rqkmeans_fits_its_codebooks_on_the_device(on_meta, monkeypatch):
    from sidkit.quantise import levels
    from sidkit.tokenizers.base import build_tokenizer

    seen = []

    def kmeans_spy(x, k, **kw):
        seen.append(x.device)
        raise Reached("kmeans")

    monkeypatch.setattr(levels, "kmeans", kmeans_spy)
    tok = build_tokenizer({"method": "rqkmeans", "levels": 2, "codebook_size": 4}, 6)
    with pytest.raises(Reached):
        tok.fit(np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32))
    assert seen == [META] and tok.device == META


def test_sasrec_and_stage2_train_on_the_device(on_meta):
    from sidkit.features.behaviour import SASRec, SASRecConfig, train_sasrec
    from sidkit.tokenizers.base import build_tokenizer
    from sidkit.tokenizers.finetune import finetune_soft_indexing

    seqs = [[int(i) for i in np.random.default_rng(u).integers(1, 30, 6)] for u in range(20)]
    on_meta(SASRec)
    with pytest.raises(Reached):
        train_sasrec(seqs, 29, SASRecConfig(dim=8, max_len=5, epochs=1, batch_size=8))

    views = {"text": 12, "image": 8}
    tok = build_tokenizer({"method": "mmq", "levels": 2, "codebook_size": 4, "latent_dim": 4, "hidden_dims": [8],
                           "input_views": list(views)}, 20, views)
    on_meta(torch.nn.Module, owner=tok)     # the tokenizer's first module call of the first step
    x = np.random.default_rng(0).normal(size=(30, 20)).astype(np.float32)
    with pytest.raises(Reached):
        finetune_soft_indexing(tok, x, [[i % 30 for i in s] for s in seqs], {"epochs": 1, "batch_size": 8})
    assert tok.device == META


def test_trainers_leave_their_models_on_the_cpu():
    """On the CPU path nothing moves; after training on a device the models come back (asserted here on the CPU
    path, where .cpu() is the identity; the meta tests above cannot copy data back)."""
    from sidkit.tokenizers.base import build_tokenizer

    tok = build_tokenizer({"method": "rqvae", "levels": 2, "codebook_size": 4, "latent_dim": 4, "hidden_dims": [8],
                           "epochs": 1, "batch_size": 32}, 12)
    tok.fit(np.random.default_rng(0).normal(size=(64, 12)).astype(np.float32))
    assert tok.device == torch.device("cpu")
