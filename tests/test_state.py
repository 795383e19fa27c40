"""A fresh state folder used by several processes at once: the stores are initialised one at a time."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INIT = ("from sidkit.settings import configure_environment; configure_environment()\n"
        "from pipelines.housekeeping import initialise_state; initialise_state()\n"
        "from zenml.client import Client; print(Client().active_stack_model.name)\n")


@pytest.mark.slow
def test_concurrent_first_use_of_a_state_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("ZENML_CONFIG_PATH", "MLFLOW_TRACKING_URI")}
    env.update(SIDKIT_HOME=str(tmp_path / "fresh"), PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", INIT], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    for out, err, code in results:  # without the lock two of three failed here ("database is locked")
        assert code == 0, err[-2000:]
        assert out.strip().splitlines()[-1] == "default"
    assert (tmp_path / "fresh" / "mlflow" / "mlflow.db").exists()


def test_a_process_uses_the_cores_it_was_given(monkeypatch):
    import torch

    from sidkit.settings import compute_threads, configure_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("SIDKIT_THREADS", "1")
        assert configure_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.delenv("SIDKIT_THREADS")
        assert compute_threads() == len(os.sched_getaffinity(0))
        monkeypatch.setenv("SIDKIT_THREADS", "0")
        with pytest.raises(ValueError, match="SIDKIT_THREADS"):
            compute_threads()
    finally:
        torch.set_num_threads(before)
