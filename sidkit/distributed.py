"""Data-parallel training with torch.distributed (DDP), on CPU (gloo) or GPU (nccl).

The training loops (the SID generator and the gradient tokenizers) check ``active()``: when a
process group is initialised they keep the *global* batch order of the single-process run (same
seed on every rank), give each rank its share of every global batch, and average gradients
across ranks. Losses are normalised by the global batch, so a step over N ranks equals the
single-process step over the same global batch up to floating-point summation order; dropout
draws differ per rank, so exact equivalence needs dropout 0 (tests/test_distributed.py).

* The generator is wrapped in ``torch.nn.parallel.DistributedDataParallel``.
* Gradient tokenizers call custom ``training_step`` methods (not ``forward``), which DDP's
  forward hooks would not see; they average gradients with ``all_reduce`` after backward (what
  DDP does, without bucketing). Code-usage counts are summed across ranks, so dead-code resets
  and health logs see the whole epoch.

Launch: ``torchrun --nproc-per-node 2 your_script.py`` (then ``init_from_env()``), or
``spawn(fn, world_size)`` from Python, which starts the processes itself.
"""

from __future__ import annotations

import os
import pickle
import socket
from typing import Any, Callable

import torch
import torch.distributed as dist


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def shard(indices: torch.Tensor) -> torch.Tensor:
    """This rank's share of a global batch (strided, so shares differ by at most one item)."""
    return indices[rank()::world_size()] if active() else indices


def average_gradients(parameters) -> None:
    if not active():
        return
    n = world_size()
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= n


def all_sum(t: torch.Tensor) -> torch.Tensor:
    if active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def init_from_env(backend: str | None = None, device: str | None = None) -> None:
    """Initialise from torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).
    The backend follows where the trainers' tensors are (``device``, default ``SIDKIT_DEVICE``: sidkit.devices),
    not whether a GPU is visible: NCCL for CUDA tensors, gloo for CPU ones (NCCL cannot reduce those)."""
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    from sidkit.devices import compute_device

    device = str(device if device is not None else compute_device())
    dist.init_process_group(backend or ("nccl" if device.startswith("cuda") else "gloo"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank_: int, world: int, port: int, backend: str, fn: Callable, args: tuple, result: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    dist.init_process_group(backend, rank=rank_, world_size=world)
    try:
        out = fn(*args)
        if rank_ == 0:  # a file, not a pipe: a large result cannot block the worker before join
            with open(result, "wb") as f:
                pickle.dump(out, f)
    finally:
        dist.destroy_process_group()


def spawn(fn: Callable[..., Any], args: tuple = (), world_size: int = 2, backend: str = "gloo") -> Any:
    """Run ``fn(*args)`` on ``world_size`` local processes; returns rank 0's result (must pickle)."""
    import torch.multiprocessing as mp

    import tempfile

    with tempfile.TemporaryDirectory(prefix="sidkit-ddp-") as tmp:
        result = os.path.join(tmp, "rank0.pkl")
        mp.start_processes(_worker, args=(world_size, _free_port(), backend, fn, args, result), nprocs=world_size,
                           join=True, start_method="spawn")
        with open(result, "rb") as f:
            return pickle.load(f)
