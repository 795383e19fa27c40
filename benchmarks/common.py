"""Shared benchmark helpers: machine facts, medians, and updating a marked block of BENCHMARKS.md."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def machine() -> str:
    import torch

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    # the CPU's vector ISA as torch sees it: bf16 autocast only pays with AVX512-BF16/AMX
    # (the same "2-core" machine has come up with and without it between sessions)
    from sidkit.precision import cpu_isa

    isa = cpu_isa()   # AMX / AVX512-BF16 named as such (torch's capability says AVX512 for both)
    return (f"{cpu} ({isa}), {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"Python {platform.python_version()}")


def wait_for_quiet(max_load: float | None = None, timeout: float = 300.0, poll: float = 10.0) -> tuple[float, bool]:
    """Wait until the 1-minute load average is below ``max_load`` (default: 3/4 of the cores -- a heavy
    job keeps it at ~the core count; one that just ended decays below in ~20 s) or ``timeout`` seconds
    pass. Returns (load, quiet). Two heavy jobs on our 2 cores make epochs 5-8x slower, so a timing
    taken beside another job is refused or marked."""
    limit = max_load if max_load is not None else 0.75 * (os.cpu_count() or 2)
    deadline = time.monotonic() + timeout
    while True:
        load = os.getloadavg()[0]
        if load < limit or time.monotonic() >= deadline:
            return round(load, 2), load < limit
        time.sleep(poll)


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:
        return "unknown"


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def update_block(name: str, markdown: str) -> None:
    """Replace the block between <!-- name:start --> and <!-- name:end --> (append if absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS_MD.write_text(text)


def save_json(name: str, data: dict) -> Path:
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path
