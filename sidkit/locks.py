"""An exclusive, non-blocking file lock per job (e.g. one retraining per model at a time).

The lock file lives under ``<state dir>/locks`` and holds the owner's pid, host and start
time, so a refusal can say who holds it. ``fcntl.flock`` is released by the kernel when the
process dies, so a crashed run never leaves a stale lock. It guards one machine (or one shared
state folder); orchestrated runs on a cluster rely on the orchestrator's own concurrency policy.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sidkit.errors import SidkitError
from sidkit.settings import state_dir


class LockHeld(SidkitError):
    """Another process holds the lock."""


@contextmanager
def exclusive(name: str, what: str, directory: str | Path | None = None) -> Iterator[Path]:
    folder = Path(directory) if directory else state_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{''.join(c if c.isalnum() or c in '-_.' else '_' for c in name)}.lock"
    f = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            try:
                owner = json.loads(f.read() or "{}")
            except ValueError:
                owner = {}
            raise LockHeld(f"{what} is already running (pid {owner.get('pid', '?')} on {owner.get('host', '?')} "
                           f"since {owner.get('since', '?')}); lock file {path}. Wait for it to finish.") from None
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
        f.flush()
        try:
            yield path
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    finally:
        f.close()


@contextmanager
def waiting(name: str, directory: str | Path | None = None) -> Iterator[Path]:
    """An exclusive lock that waits for its turn (e.g. first use of a state folder: one initialiser at a time)."""
    folder = Path(directory) if directory else state_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.lock"
    with open(path, "a+", encoding="utf-8") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class ProcessMarker:
    """A lock held for the life of one sidkit process that runs pipelines in this state folder.

    :meth:`others_alive` tells whether any other such process is alive, so runs left "running" by a
    process that died (kill -9, power loss) can be told apart from runs still in progress.
    """

    def __init__(self, directory: str | Path | None = None):
        self.folder = Path(directory) if directory else state_dir() / "locks" / "processes"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"{os.getpid()}.lock"
        self._file = open(self.path, "w", encoding="utf-8")
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def others_alive(self) -> list[int]:
        alive = []
        for path in self.folder.glob("*.lock"):
            if path == self.path:
                continue
            with open(path, "a", encoding="utf-8") as f:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    alive.append(int(path.stem) if path.stem.isdigit() else -1)
                    continue
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            path.unlink(missing_ok=True)  # its process is gone
        return alive

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
        self._file.close()
