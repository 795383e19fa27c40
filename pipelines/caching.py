"""Step caching that also sees sidkit's code.

ZenML's cache key covers a step's own source, its parameters and its input artifacts -- not the
library code the step calls. A ``run.py evaluate`` after a change to ``sidkit/`` (a faster beam
search, a fixed loss) would otherwise return the result an older commit computed, in seconds,
under a new run (found 2026-12-02: a re-run MovieLens row came back from the cache in 24 s). The
policy below adds a fingerprint of every source file the steps execute -- ``sidkit/``, ``steps/``
and ``materializers/`` -- to each step's cache key, so cached outputs are reused only while that
code is byte-for-byte the same. Data files are covered by ``load_data``'s ``source_fingerprint``.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from zenml.config.cache_policy import CachePolicy

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sidkit", "steps", "materializers")


def code_fingerprint(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> str:
    """SHA-256 over the relative path and bytes of every ``.py`` file under ``packages``."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def library_fingerprint() -> str:
    """The fingerprint of this checkout's code, once per process (ZenML calls it for every step)."""
    return code_fingerprint()


LIBRARY_AWARE_CACHE = CachePolicy(cache_func="pipelines.caching.library_fingerprint")
