"""Where the trainers compute: ``SIDKIT_DEVICE`` = ``cpu`` (default) | ``auto`` | ``cuda`` | ``cuda:N``.

A device is where a run executes, not what it measures (like ``SIDKIT_THREADS`` and ``precision``), so it is
an environment setting, never part of a config or a protocol hash: the cluster overlays set it for the steps
that get a GPU (configs/overlays/kubernetes.yaml), a laptop leaves it unset. ``auto`` picks CUDA when torch
sees one, else the CPU; ``cuda`` on a machine without one is an error, not a silent CPU run.

Every trainer (tokenizers, MMQ's stage 2, the SASRec behaviour view, the SID generator and its beam search,
the DIN ranker) builds its model and its batches inside :func:`on_device`, so tensors created by torch's
factory functions land on the device; tensors made from numpy are moved with :func:`to_device`, and results go
back with ``.cpu()`` before numpy sees them. Random draws that order data use CPU generators
(``device="cpu"``) and models are initialised on the CPU (:func:`built_on_cpu`), so the data order and the
initial weights are the same on every device.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re

import torch

from sidkit.errors import ConfigError

DEVICE_ENV = "SIDKIT_DEVICE"


def resolve_device(name: str | None = None) -> torch.device:
    """The device ``name`` (default: ``SIDKIT_DEVICE``, else ``cpu``) names, checked against this machine."""
    name = (name if name is not None else os.environ.get(DEVICE_ENV) or "cpu").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", name):
        if not torch.cuda.is_available():
            raise ConfigError(f"{DEVICE_ENV}={name}: torch sees no CUDA device on this machine "
                              "(use auto to fall back to the CPU)")
        # under torchrun each rank takes its own GPU (LOCAL_RANK) unless an index is given
        index = int(name.split(":")[1]) if ":" in name else int(os.environ.get("LOCAL_RANK", "0"))
        if index >= torch.cuda.device_count():
            raise ConfigError(f"{DEVICE_ENV}={name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    raise ConfigError(f"{DEVICE_ENV}={name!r}: expected cpu, auto, cuda or cuda:N")


def compute_device() -> torch.device:
    """The device the trainers use in this process (``SIDKIT_DEVICE``)."""
    return resolve_device()


@contextlib.contextmanager
def on_device(device: torch.device | None = None):
    """Tensors created by torch's factory functions (and modules' parameters) inside land on ``device``
    (default: :func:`compute_device`). Yields the device. On the CPU it is no context at all: torch's device
    context intercepts every torch call, and the CPU path stays exactly what it was."""
    device = device if device is not None else compute_device()
    with contextlib.nullcontext() if device.type == "cpu" else torch.device(device):
        yield device


def runs_on_device(fn):
    """Decorator: ``fn`` runs inside :func:`on_device` (a trainer's or a ranking function's entry point)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with on_device():
            return fn(*args, **kwargs)
    return wrapper


def built_on_cpu(build):
    """``build()`` (a module) constructed on the CPU, so its initial weights are drawn from the CPU generator as in
    a CPU run, then moved to the current default device."""
    device = torch.get_default_device()
    with torch.device("cpu"):
        module = build()
    return module.to(device)


def to_device(x, device: torch.device | None = None):
    """A tensor (or a numpy array, converted) on ``device`` (default: the current default device)."""
    device = device if device is not None else torch.get_default_device()
    x = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
    return x.to(device, non_blocking=True)
