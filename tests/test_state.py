"""A fresh state folder used by several processes at once: the stores are initialised one at a time."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


def test_a_dead_local_dashboard_server_is_named_not_retried(tmp_path, monkeypatch):
    """After `zenml login --local` and a reboot, every command retried ~30 s and printed a traceback."""
    import socket

    from pipelines.housekeeping import dead_local_server

    monkeypatch.setenv("ZENML_CONFIG_PATH", str(tmp_path))
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    port = listening.getsockname()[1]

    def store(**kw):
        (tmp_path / "config.yaml").write_text(yaml.safe_dump({"store": kw}))

    store(type="rest", url=f"http://127.0.0.1:{port}")
    assert dead_local_server() is None                                  # running: fine
    listening.close()
    message = dead_local_server()
    assert f"127.0.0.1:{port}" in message and "zenml logout --local" in message and "zenml login --local" in message
    store(type="sql", url="sqlite:////x/zenml.db")
    assert dead_local_server() is None                                  # the local database: nothing to check
    store(type="rest", url="https://zenml.example.com")
    assert dead_local_server() is None                                  # a remote server is not ours to probe
