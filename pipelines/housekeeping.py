"""Before a pipeline starts: the state folder initialised once, runs left behind by dead processes closed.

A run killed with ``kill -9`` (or lost with its machine) stays "running" in ZenML and RUNNING in
MLflow for ever. On the next start, when no other sidkit process is alive in this state folder
(:class:`sidkit.locks.ProcessMarker`), such runs of the local orchestrator are closed as failed,
with the reason recorded. Runs on remote orchestrators are never touched: their orchestrator owns them.
"""

from __future__ import annotations

from sidkit.locks import ProcessMarker, waiting
from sidkit.tracking import close_stale_runs
from sidkit.utils import log

STALE_REASON = "closed by sidkit: the process that ran it ended without finishing it (killed or crashed)"


def dead_local_server() -> str | None:
    """A message when ZenML is set to a local dashboard server (``zenml login --local``) that is not running --
    e.g. after a reboot -- else None. Without this check every command spends ~30 s retrying, then prints a
    traceback."""
    import os
    import socket
    from pathlib import Path
    from urllib.parse import urlparse

    import yaml

    config = Path(os.environ.get("ZENML_CONFIG_PATH", "")) / "config.yaml"
    try:
        store = (yaml.safe_load(config.read_text()) or {}).get("store") or {}
    except (OSError, yaml.YAMLError):
        return None
    url = urlparse(str(store.get("url", "")))
    if store.get("type") != "rest" or url.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    try:
        socket.create_connection((url.hostname, url.port or 80), timeout=1.0).close()
        return None
    except OSError:
        return (f"ZenML is set to the local dashboard server at {store['url']} (zenml login --local), which is not "
                f"running. Start it again with `source {Path(os.environ.get('SIDKIT_HOME', '.sidkit'))}/env.sh && "
                "zenml login --local`, or go back to the local database with `zenml logout --local`.")


def initialise_state() -> None:
    """Create (and migrate) the ZenML and MLflow stores one process at a time: concurrent first uses raced."""
    with waiting("state-initialisation"):
        from zenml.client import Client

        from sidkit.tracking import _mlflow

        Client().active_stack_model
        _mlflow().MlflowClient().search_experiments(max_results=1)


def close_stale_pipeline_runs(marker: ProcessMarker) -> dict[str, list[str]]:
    """Close runs left running by dead processes; nothing is touched while another sidkit process lives."""
    from zenml.client import Client
    from zenml.enums import ExecutionStatus
    from zenml.models import PipelineRunUpdate, StepRunUpdate

    if marker.others_alive():
        return {"zenml": [], "mlflow": []}
    client = Client()
    if client.active_stack.orchestrator.flavor != "local":
        return {"zenml": [], "mlflow": []}
    closed = []
    for status in (ExecutionStatus.RUNNING, ExecutionStatus.INITIALIZING):
        for run in client.list_pipeline_runs(status=status.value, size=1000).items:
            for step in run.steps.values():
                if step.status in (ExecutionStatus.RUNNING, ExecutionStatus.INITIALIZING):
                    client.zen_store.update_run_step(step.id, StepRunUpdate(status=ExecutionStatus.FAILED))
            client.zen_store.update_run(run.id, PipelineRunUpdate(status=ExecutionStatus.FAILED,
                                                                  status_reason=STALE_REASON))
            closed.append(run.name)
    mlflow_closed = close_stale_runs(STALE_REASON)
    if closed or mlflow_closed:
        log.warning("closed %d stale ZenML run(s) %s and %d MLflow run(s) as failed: %s", len(closed), closed,
                    len(mlflow_closed), STALE_REASON)
    return {"zenml": closed, "mlflow": mlflow_closed}
