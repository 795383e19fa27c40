"""The tokenizer interface, configuration, registry and on-disk format.

On disk a tokenizer is a folder with ``config.json`` (method, config, input dim,
sidkit version) and ``model.safetensors`` (its tensors). Nothing is pickled; loading
rebuilds the module from the config and loads the tensors, so reloading gives
identical SIDs.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, NamedTuple

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

import sidkit
from sidkit.errors import ConfigError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class TokenizerConfig(BaseModel):
    """Options shared by the tokenizers; each method reads the ones it uses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = "rqvae"
    input_views: tuple[str, ...] = ("text",)
    levels: int = Field(3, ge=1)
    codebook_size: int = Field(256, ge=2)
    latent_dim: int = Field(32, ge=1)
    hidden_dims: tuple[int, ...] = (512, 256, 128)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    beta: float = 0.25
    gradient: str = "ste"                   # "ste" | "rotation"
    sinkhorn_eps_last_level: float = 0.0    # > 0: Sinkhorn-balanced last level (LETTER uses 0.003)
    kmeans_init: bool = True
    kmeans_iters: int = 50
    kmeans_balanced: bool = False           # RQ-KMeans: Sinkhorn-balanced Lloyd steps (OneRec)
    dead_code_reset: bool = True            # re-seed codes unused in an epoch from batch residuals
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(1024, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    eval_every: int = Field(10, ge=1)
    # checkpoint kept: "collision" = lowest collision rate at an evaluation, then loss (LETTER/MACRec
    # code); "last" = the end of training (TIGER). Collisions often rise as codes spread out, and then
    # "collision" keeps an early, under-trained checkpoint (the trainer warns when it keeps the first).
    select_by: Literal["collision", "last"] = "collision"
    bf16: bool = False
    seed: int = 0
    # ---- multi-expert tokenizers (mmq, adasid, macrec); see sidkit/tokenizers/multi_expert.py, mmq.py, adasid.py, macrec.py
    n_shared_experts: int = 1               # MMQ / ADA-SID shared experts
    n_specific_experts: int = 1             # per view (MMQ) or per side (ADA-SID: content, behaviour)
    loss_weights: dict[str, float] = Field(default_factory=dict)   # overrides of the method's defaults; 0 = off
    temperature: float = Field(0.1, gt=0.0)               # InfoNCE temperature (alignment, contrast)
    contrast_start_level: int = 2           # MACRec: first level with cross-modal residual contrast (paper: 3rd)
    pseudo_label_clusters: int = 512        # MACRec: k-means clusters per modality for positives (capped at n/4)
    richness_aware: bool = True             # ADA-SID: weight alignment by information richness
    richness_slope: float = 1.0             # ADA-SID: a in w = sigmoid(a (log(1+n) - mu))
    richness_center: float | None = None    # ADA-SID: mu; None = median of log(1+n) over items
    router: bool = True                     # ADA-SID: dynamic behavioural router
    router_top_k: int | None = None         # ADA-SID: keep the k largest gate values (None: L1 only)


class FitContext(NamedTuple):
    """What a tokenizer may use besides the input matrix (all aligned with its rows)."""

    masks: dict[str, np.ndarray] | None = None        # view -> bool (item has the view)
    item_counts: np.ndarray | None = None             # training interactions per item (richness)
    train_sequences: list[list[int]] | None = None    # training histories as row indices (stage-2 objectives)


class Encoded(NamedTuple):
    codes: np.ndarray      # (n_items, n_levels) int64, before collision resolution
    distances: np.ndarray  # (n_items, n_levels, K) float32 squared distances per level


COMMON_KEYS = frozenset({"method", "input_views", "levels", "codebook_size", "seed"})


class Tokenizer(nn.Module):
    """Base class. Subclasses set ``method`` and implement ``fit``, ``_encode`` and ``reconstruct``.
    ``READS``: the TokenizerConfig keys the method reads besides COMMON_KEYS (a config setting any
    other key is refused: it would be silently ignored)."""

    method: ClassVar[str]
    READS: ClassVar[frozenset[str]] = frozenset()
    stage: str = "stage1"  # "stage2-soft-indexing" after behaviour-aware fine-tuning

    def __init__(self, config: TokenizerConfig, input_dim: int, view_dims: dict[str, int] | None = None):
        super().__init__()
        self.config = config
        self.input_dim = input_dim
        self.view_dims = dict(view_dims) if view_dims else {"input": input_dim}
        if sum(self.view_dims.values()) != input_dim:
            raise ConfigError(f"view dims {self.view_dims} do not add up to the input dim {input_dim}")

    # -- interface ---------------------------------------------------------
    def fit(self, x: np.ndarray, on_epoch: Callable[[int, dict], None] | None = None,
            context: FitContext | None = None) -> list[dict]:
        raise NotImplementedError

    def item_weights(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Per-item weights exported beside the SIDs (e.g. ADA-SID's router); none by default."""
        return {}

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def codebook_sizes(self) -> list[int]:
        return [self.config.codebook_size] * self.config.levels

    # -- shared -----------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the tokenizer's weights are (the device while it trains; the CPU after)."""
        return next(itertools.chain(self.parameters(), self.buffers()), torch.empty(0, device="cpu")).device

    @torch.no_grad()
    def encode(self, x: np.ndarray, batch_size: int = 8192) -> Encoded:
        self.eval()
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)
        codes, dists = [], []
        for start in range(0, len(xt), batch_size):
            c, d = self._encode(xt[start:start + batch_size])
            codes.append(c)
            dists.append(d)
        return Encoded(torch.cat(codes).cpu().numpy().astype(np.int64), torch.cat(dists).float().cpu().numpy())

    @torch.no_grad()
    def reconstruction_loss(self, x: np.ndarray, batch_size: int = 8192) -> float:
        self.eval()
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)
        total = 0.0
        for start in range(0, len(xt), batch_size):
            xb = xt[start:start + batch_size]
            total += torch.nn.functional.mse_loss(self.reconstruct(xb), xb, reduction="sum").item()
        return total / max(xt.numel(), 1)

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "input_dim": self.input_dim, "levels": self.config.levels,
                "codebook_size": self.config.codebook_size, "input_views": list(self.config.input_views),
                "sid_length": len(self.codebook_sizes), "stage": self.stage}

    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"method": self.method, "stage": self.stage, "input_dim": self.input_dim, "view_dims": self.view_dims,
                "sidkit_version": sidkit.__version__,
                "torch_version": torch.__version__, "config": self.config.model_dump(mode="json")}
        (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        state = {k: v.detach().contiguous().clone() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        return directory


_REGISTRY: dict[str, type[Tokenizer]] = {}


def register(cls: type[Tokenizer]) -> type[Tokenizer]:
    _REGISTRY[cls.method] = cls
    return cls


def registry() -> dict[str, type[Tokenizer]]:
    # import the built-in tokenizers so they register themselves
    from sidkit.tokenizers import adasid, macrec, mmq, rqkmeans, rqvae  # noqa: F401

    return _REGISTRY


def unread_keys(config: dict) -> list[str]:
    """Keys a tokenizer config sets that its method does not read (``[]`` for an unknown method:
    that error is build_tokenizer's)."""
    cls = registry().get(config.get("method", TokenizerConfig.model_fields["method"].default))
    return [] if cls is None else sorted(set(config) - COMMON_KEYS - cls.READS)


def build_tokenizer(config: TokenizerConfig | dict, input_dim: int, view_dims: dict[str, int] | None = None) -> Tokenizer:
    cfg = config if isinstance(config, TokenizerConfig) else TokenizerConfig.model_validate(config)
    reg = registry()
    if cfg.method not in reg:
        raise ConfigError(f"tokenizer.method must be one of {sorted(reg)}, got {cfg.method!r}")
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)  # weight initialisation is part of "same seed, same SIDs"
        return reg[cfg.method](cfg, input_dim, view_dims)


def load_tokenizer(directory: str | Path) -> Tokenizer:
    from safetensors.torch import load_file

    directory = Path(directory)
    meta = json.loads((directory / CONFIG_FILE).read_text())
    tok = build_tokenizer(TokenizerConfig.model_validate(meta["config"]), int(meta["input_dim"]), meta.get("view_dims"))
    tok.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    tok.stage = meta.get("stage", "stage1")
    tok.eval()
    return tok
