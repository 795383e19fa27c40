"""Shared plumbing: write into a local temporary folder, then copy to the artifact store.

This keeps materializers working with remote artifact stores (S3, GCS) as well as the
local one; each materializer only writes and reads plain files in a folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator

from zenml.enums import VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer


class FolderMaterializer(BaseMaterializer):
    """Base class: subclasses implement ``write(data, folder)`` and ``read(folder, data_type)``."""

    SKIP_REGISTRATION = True

    def write(self, data: Any, folder: str) -> None:
        raise NotImplementedError

    def read(self, folder: str, data_type: type) -> Any:
        raise NotImplementedError

    def html(self, data: Any) -> str | None:
        return None

    @contextmanager
    def _local(self) -> Iterator[str]:
        with tempfile.TemporaryDirectory(prefix="sidkit-art-") as tmp:
            yield tmp

    def save(self, data: Any) -> None:
        with self._local() as tmp:
            self.write(data, tmp)
            for root, _, files in os.walk(tmp):
                for name in files:
                    src = os.path.join(root, name)
                    rel = os.path.relpath(src, tmp)
                    dst = os.path.join(self.uri, rel)
                    fileio.makedirs(os.path.dirname(dst))
                    fileio.copy(src, dst, overwrite=True)

    def load(self, data_type: type) -> Any:
        with self._local() as tmp:
            for src_dir, _, files in fileio.walk(self.uri):
                src_dir = str(src_dir)
                for name in files:
                    name = str(name)
                    src = os.path.join(src_dir, name)
                    rel = os.path.relpath(src, self.uri)
                    dst = os.path.join(tmp, rel)
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    fileio.copy(src, dst, overwrite=True)
            return self.read(tmp, data_type)

    def save_visualizations(self, data: Any) -> dict[str, VisualizationType]:
        page = self.html(data)
        if not page:
            return {}
        uri = os.path.join(self.uri, "visualization.html")
        with fileio.open(uri, "w") as f:
            f.write(page)
        return {uri: VisualizationType.HTML}


def write_json(folder: str, name: str, obj: Any) -> None:
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, default=str)


def read_json(folder: str, name: str) -> Any:
    with open(os.path.join(folder, name), encoding="utf-8") as f:
        return json.load(f)


def scalar_metadata(d: dict, prefix: str = "") -> dict:
    """Flatten to values ZenML metadata accepts (numbers, strings, short lists)."""
    out: dict = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(scalar_metadata(v, key + "."))
        elif isinstance(v, (list, tuple)):
            if len(v) <= 64 and all(isinstance(x, (int, float, str)) for x in v):
                out[key] = list(v)
        elif isinstance(v, (int, float, str, bool)) or v is None:
            if v is not None:
                out[key] = v
    return out
