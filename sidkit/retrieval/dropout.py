"""Dropout whose masks are drawn by NumPy's SFC64 generator instead of torch's CPU generator.

Profiling the SID generator on CPU (BENCHMARKS.md, downstream profile) found ``aten::bernoulli_``
-- torch's dropout masks, drawn one Mersenne-Twister number per element -- at ~21% of a training
epoch, more than any matmul. SFC64 fills the same mask from raw bytes about 6x faster; one 16-bit
draw per element decides it, so the drop probability is ``p`` rounded to a multiple of 1/65536.
Otherwise it is ordinary inverted dropout: kept values scaled by 1 / (1 - p), the identity in
eval mode. The generator is seeded from torch's at construction, so a model built after
``torch.manual_seed(s)`` draws the same masks every run (runs stay reproducible).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class FastDropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        # an int16 draw below this threshold drops the element: P = round(p * 65536) / 65536
        self.threshold = int(round(p * 65536)) - 32768
        # seeded from torch's CPU generator on any device (sidkit.devices), so masks are the same everywhere
        self.rng = np.random.Generator(np.random.SFC64(int(torch.randint(0, 2**62, (1,), device="cpu"))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        bits = np.frombuffer(self.rng.bytes(2 * x.numel()), dtype=np.int16).reshape(x.shape)
        keep = torch.from_numpy(bits.copy()).to(x.device) >= self.threshold
        return torch.where(keep, x * (1.0 / (1.0 - self.p)), x.new_zeros(()))

    def extra_repr(self) -> str:
        return f"p={self.p}"
