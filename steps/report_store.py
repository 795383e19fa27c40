"""Report pages into the active stack's artifact store.

A step writes its page into the local reports folder (``<state dir>/reports``, for analysts on this machine)
and copies the page's folder to ``<artifact store>/sidkit-reports/<kind>/<folder>``: on a remote orchestrator
(Kubeflow, Kubernetes) the local folder is a pod's disk that disappears with the pod, while the artifact store
(S3, GCS, a shared volume) is where the stack keeps what a run produced. The copy's URI goes into the step's
metadata (``report_uri``) and into the summaries that carry a page.
"""

from __future__ import annotations

from pathlib import Path


def store_report(folder: Path | str, kind: str) -> str:
    """Copy a report folder (its files, recursively) into the artifact store; returns the copy's URI."""
    from zenml import get_step_context, log_metadata
    from zenml.client import Client
    from zenml.io import fileio

    folder = Path(folder)
    root = Client().active_stack.artifact_store.path.rstrip("/")
    dest = f"{root}/sidkit-reports/{kind}/{folder.name}"
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        target = f"{dest}/{path.relative_to(folder).as_posix()}"
        fileio.makedirs(target.rsplit("/", 1)[0])
        fileio.copy(str(path), target, overwrite=True)
    uri = f"{dest}/{_page_name(folder)}"
    try:
        get_step_context()
    except RuntimeError:            # outside a step (scripts, tests): the copy is what matters
        return uri
    log_metadata(metadata={"report_uri": uri})
    return uri


def _page_name(folder: Path) -> str:
    return "report.html" if (folder / "report.html").exists() and not (folder / "index.html").exists() else "index.html"
