"""Small shared helpers: seeding, hashing, progress bars, logging."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import sys
from typing import Any, Iterable

import numpy as np

log = logging.getLogger("sidkit")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU); the same seed and data give the same SIDs."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def torch_generator(seed: int):
    import torch

    g = torch.Generator()
    g.manual_seed(seed)
    return g


def stable_hash(obj: Any, n: int = 16) -> str:
    """SHA-256 of a JSON-serialisable object (keys sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def progress(iterable: Iterable, *, total: int | None = None, desc: str = "", unit: str = "it"):
    """tqdm progress bar on stderr; silenced with SIDKIT_PROGRESS=0."""
    from tqdm.auto import tqdm

    disable = os.environ.get("SIDKIT_PROGRESS", "1") == "0"
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr, mininterval=2.0)


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
