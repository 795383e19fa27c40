"""Trained downstream models as plain files: config.json + model.safetensors (+ .npy arrays)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass
class ModelBundle:
    kind: str                                   # "sid-generator" | "din-ranker"
    config: dict
    state: dict[str, torch.Tensor]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @classmethod
    def of(cls, kind: str, model: nn.Module, config: dict, arrays: dict | None = None, info: dict | None = None):
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        return cls(kind, config, state, dict(arrays or {}), dict(info or {}))

    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps({"kind": self.kind, "config": self.config, "info": self.info,
                                                   "arrays": sorted(self.arrays)}, indent=2, default=str))
        # tied weights share storage: store each tensor once under every name (safetensors needs distinct storage)
        save_file({k: v.clone() for k, v in self.state.items()}, str(d / "model.safetensors"))
        for name, arr in self.arrays.items():
            np.save(d / f"{name}.npy", arr, allow_pickle=False)

    @classmethod
    def load(cls, directory: str | Path) -> "ModelBundle":
        from safetensors.torch import load_file

        d = Path(directory)
        meta = json.loads((d / "config.json").read_text())
        arrays = {n: np.load(d / f"{n}.npy", allow_pickle=False) for n in meta["arrays"]}
        return cls(meta["kind"], meta["config"], load_file(str(d / "model.safetensors")), arrays, meta["info"])

    def build(self) -> nn.Module:
        """Rebuild the module with its weights."""
        if self.kind == "sid-generator":
            from sidkit.retrieval.generator import GeneratorConfig, SIDVocabulary, build_generator

            cfg = GeneratorConfig.model_validate(self.config)
            model = build_generator(SIDVocabulary([int(n) for n in self.info["sid_sizes"]]), int(self.info["max_len"]),
                                    cfg, self.info.get("views"), self.arrays.get("sids"), self.arrays.get("weights"))
        elif self.kind == "din-ranker":
            from sidkit.ranking.din import DIN, ItemRepresentation, RankerConfig

            cfg = RankerConfig.model_validate(self.config)
            rep = ItemRepresentation(int(self.info["n_items"]), self.arrays.get("sids"), self.arrays.get("weights"), cfg)
            model = DIN(rep, cfg)
        else:
            raise ValueError(f"unknown model bundle kind {self.kind!r}")
        model.load_state_dict(self.state)
        return model.eval()
